"""Every event type of ``livefeed/events.py`` reaches a reader on Server-Sent Events.

EventSource fires only the record names it listens for: a type missing from the
browser's list is an event SSE readers silently never get.
"""

from __future__ import annotations

import contextlib
from typing import Any

from playwright.async_api import TimeoutError as PageTimeout

from livefeed import events
from livefeed.settings import Settings
from livefeed.storage.connect import connect
from livefeed.storage.eventlog import EventLog
from livefeed.storage.keys import Keys
from tests.browser.conftest import Opener

# A topic no page of ours follows, so the page's own live code ignores the probes.
TOPIC = events.article_topic("event-types-probe")

# The browser's own SseTransport on /events, recording the type of every frame it gets.
LISTEN = """
async (topic) => {
  const { SseTransport } = await import("/static/live/connection.js");
  window.__received = [];
  const transport = new SseTransport({
    open: () => {},
    message: (data) => window.__received.push(JSON.parse(data).type),
    close: () => {},
  });
  transport.open({ [topic]: null });
}
"""


async def test_an_sse_reader_gets_every_event_type(
    live_server: Any, settings: Settings, open_page: Opener
) -> None:
    page = (await open_page(f"{live_server.url}/articles/none")).page
    await page.evaluate(LISTEN, TOPIC)
    await page.wait_for_function("() => window.__received.includes('subscribed')")
    assert settings.redis_url is not None
    redis = connect(settings.redis_url)
    try:
        log = EventLog(redis, Keys(settings.redis_prefix), settings.history_size, sharded=False)
        for n, event_type in enumerate(events.EVENT_TYPES):
            await log.append(TOPIC, event_type, {"id": f"probe-{n}"})
    finally:
        await redis.aclose()
    expected = [events.SUBSCRIBED, *events.EVENT_TYPES]
    with contextlib.suppress(PageTimeout):  # the comparison below says what is missing
        await page.wait_for_function("n => window.__received.length >= n", arg=len(expected))
    assert await page.evaluate("window.__received") == expected
