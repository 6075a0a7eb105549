"""The live connection in Chromium: resuming after a restart, SSE fallback, refetching."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Route, expect

from livefeed import models
from livefeed.settings import Settings
from livefeed.storage.connect import connect
from livefeed.storage.content import Content
from livefeed.storage.eventlog import EventLog
from livefeed.storage.keys import Keys
from tests.browser.conftest import BRIEFS, COMMENTS, Newsroom, Opener, brief_ids, wait_live

SLUG = "xi-putin-talks"

# Replaces the browser's WebSocket with one that never connects, as behind a proxy that
# strips upgrades: the page must fall back to Server-Sent Events.
NO_WEBSOCKET = """
window.WebSocket = class BlockedWebSocket extends EventTarget {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url) {
    super();
    this.url = url;
    this.readyState = 3;
    window.__blockedWebSockets = (window.__blockedWebSockets || 0) + 1;
    setTimeout(() => {
      this.onerror?.(new Event("error"));
      this.onclose?.({ code: 1006, reason: "", wasClean: false });
    }, 10);
  }
  send() { throw new Error("not open"); }
  close() {}
};
"""


@pytest.fixture
async def newsdesk(settings: Settings) -> AsyncIterator[Content]:
    """Storage-level publishing, for when the server itself is down."""
    assert settings.redis_url is not None
    redis = connect(settings.redis_url)
    keys = Keys(settings.redis_prefix)
    yield Content(redis, keys, EventLog(redis, keys, settings.history_size), settings.comment_rate)
    await redis.aclose()


async def test_after_a_server_restart_every_brief_shows_exactly_once(
    live_server: Any, newsroom: Newsroom, newsdesk: Content, open_page: Opener
) -> None:
    await newsroom.put_article(SLUG)
    before = await newsroom.publish("Before the restart.")
    page = (await open_page(f"{live_server.url}/articles/{SLUG}")).page
    await wait_live(page)
    seen = await newsroom.publish("Seen live.")
    await expect(page.locator(BRIEFS).first).to_have_attribute("data-brief-id", seen["id"])

    await live_server.stop()
    status = page.locator('[data-live="status"]')
    await expect(status).not_to_have_attribute("data-state", "connected")
    # Published while the page has no connection at all.
    missed = []
    for n in range(3):
        brief = await newsdesk.publish_brief(models.new_brief({"text": f"Missed {n}."}))
        assert brief is not None
        missed.append(brief.id)
    await live_server.start()
    await wait_live(page)
    after = await newsroom.publish("After the restart.")

    expected = [after["id"], *reversed(missed), seen["id"], before["id"]]
    await expect(page.locator(BRIEFS)).to_have_count(len(expected))
    assert await brief_ids(page) == expected
    for brief_id in expected:
        await expect(page.locator(f'[data-brief-id="{brief_id}"]')).to_have_count(1)


async def test_without_websockets_the_page_updates_over_sse(
    live_server: Any, newsroom: Newsroom, open_page: Opener
) -> None:
    await newsroom.put_article(SLUG)
    watched = await open_page(f"{live_server.url}/articles/{SLUG}", init_script=NO_WEBSOCKET)
    page = watched.page
    await wait_live(page)
    status = page.locator('[data-live="status"]')
    await expect(status).to_have_attribute("data-transport", "sse")
    assert await page.evaluate("window.__blockedWebSockets") >= 1

    brief = await newsroom.publish("Delivered over SSE.")
    await expect(page.locator(BRIEFS).first).to_have_attribute("data-brief-id", brief["id"])
    comment = await newsroom.comment(SLUG, "Eve", "Also over SSE.")
    await expect(page.locator(f'[data-comment-id="{comment["id"]}"]')).to_have_count(1)
    await newsroom.correct(brief["id"], text="Corrected over SSE.")
    await expect(page.locator(BRIEFS).first).to_contain_text("Corrected over SSE.")


async def test_sse_resumes_after_a_restart(
    live_server: Any, newsroom: Newsroom, newsdesk: Content, open_page: Opener
) -> None:
    await newsroom.put_article(SLUG)
    page = (await open_page(f"{live_server.url}/articles/{SLUG}", init_script=NO_WEBSOCKET)).page
    await wait_live(page)
    first = await newsroom.publish("Over SSE, before.")
    await expect(page.locator(BRIEFS)).to_have_count(1)

    await live_server.stop()
    missed = await newsdesk.publish_brief(models.new_brief({"text": "Missed over SSE."}))
    assert missed is not None
    await live_server.start()
    await wait_live(page)
    last = await newsroom.publish("Over SSE, after.")
    await expect(page.locator(BRIEFS)).to_have_count(3)
    assert await brief_ids(page) == [last["id"], missed.id, first["id"]]


async def test_unrecoverable_position_refetches_the_lists(
    live_server: Any, newsroom: Newsroom, open_page: Opener, browser: Any
) -> None:
    """A page whose embedded positions the server cannot serve is told recovered: false."""
    await newsroom.put_article(SLUG)
    old = await newsroom.publish("Rendered with the page.")

    async def stale_positions(route: Route) -> None:
        response = await route.fetch()
        html = await response.text()
        # Positions from a history the server does not have (e.g. Redis lost its data).
        html = re.sub(r'"([a-z0-9]{1,16})-(\d+)-(\d+)"', '"zzzzzzzz-1-0"', html)
        await route.fulfill(response=response, body=html)

    context = await browser.new_context()
    try:
        await context.route(f"{live_server.url}/articles/{SLUG}", stale_positions)
        page = await context.new_page()
        await page.goto(f"{live_server.url}/articles/{SLUG}")
        # Published after the page was rendered but before the list is refetched.
        fresh = await newsroom.publish("Published meanwhile.")
        await newsroom.comment(SLUG, "Dan", "Posted meanwhile.")
        await expect(page.locator('[data-live="status"]')).to_have_attribute(
            "data-state", "connected"
        )
        await expect(page.locator(BRIEFS)).to_have_count(2)
        assert await brief_ids(page) == [fresh["id"], old["id"]]
        await expect(page.locator(COMMENTS)).to_have_count(1)
    finally:
        await context.close()
