"""connection.js on its own, in Chromium, with fake transports: what each close code does.

The page under test is a plain page of ours (so the module loads under the real CSP); the
fakes record what the Connection asks of them and let the test play the server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Page

from livefeed import events
from tests.browser.conftest import Opener

# Installs window.harness: fake WebSocket/SSE transports, a setTimeout that records
# delays (and runs nothing by itself: the test fires timers when it wants).
HARNESS = """
async () => {
  const live = await import("/static/live/connection.js");
  const opened = [];
  const timers = [];
  window.setTimeout = (fn, ms) => { timers.push({ fn, ms }); return timers.length; };
  window.clearTimeout = (id) => { if (timers[id - 1]) timers[id - 1].cleared = true; };
  const fake = (kind) => class {
    static kind = kind;
    constructor(handlers) { this.handlers = handlers; this.sent = []; this.closed = false; }
    open(positions) { this.positions = positions; opened.push(this); }
    send(frame) { this.sent.push(frame); }
    close() { this.closed = true; }
  };
  const WS = fake("websocket"), SSE = fake("sse");
  const connection = new live.Connection(
    { briefs: "e-1-0", "comments:a": "e-2-0" }, { transports: [WS, SSE] });
  const states = [];
  connection.addEventListener("state", (e) => states.push(e.detail.state));
  window.harness = {
    live, connection, opened, timers, states,
    last: () => opened[opened.length - 1],
    pending: () => timers.filter((t) => !t.cleared && !t.fired),
    fire: (index) => { const t = timers[index]; t.fired = true; t.fn(); },
    fireReconnect: () => {
      const t = timers.filter((t) => !t.cleared && !t.fired).pop();
      t.fired = true; t.fn();
    },
  };
  connection.start();
}
"""


class Harness:
    """The page with ``window.harness`` installed: the test plays the server through it."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def js(self, expression: str) -> Any:
        """``expression`` evaluated in the page, with ``h`` the harness."""
        return await self.page.evaluate(
            f"() => {{ const h = window.harness; return {expression}; }}"
        )

    async def open(self) -> None:
        """The transport tried last opens."""
        await self.js("h.last().handlers.open()")

    async def close(self, code: int, reason: str | None = None) -> None:
        """The transport tried last closes with ``code`` (and ``reason``)."""
        info = {"code": code} if reason is None else {"code": code, "reason": reason}
        await self.js(f"h.last().handlers.close({json.dumps(info)})")

    async def fail_both_transports(self) -> None:
        """The WebSocket fails before opening, then SSE does: a failed cycle."""
        await self.close(1006)  # websocket
        await self.close(1006)  # sse

    async def receive(self, frame: str) -> None:
        """The transport tried last delivers ``frame``."""
        await self.js(f"h.last().handlers.message({frame!r})")

    async def state(self) -> str:
        return str(await self.js("h.connection.state"))

    async def attempts(self) -> int:
        """How many transports the connection has opened so far."""
        return int(await self.js("h.opened.length"))

    async def next_retry_ms(self) -> int:
        """The delay of the one reconnect the connection has scheduled."""
        delays = await self.js("h.pending().map(t => t.ms)")
        assert len(delays) == 1, delays
        return int(delays[0])


@pytest.fixture
async def h(live_server: Any, open_page: Opener) -> Harness:
    """The harness, named as the page's expressions name it."""
    page = (await open_page(f"{live_server.url}/articles/none")).page
    await page.evaluate(HARNESS)
    return Harness(page)


async def test_websocket_is_tried_first_then_sse_at_once(h: Harness) -> None:
    assert await h.js("h.opened.map(t => t.constructor.kind)") == ["websocket"]
    assert await h.js("h.last().positions") == {"briefs": "e-1-0", "comments:a": "e-2-0"}
    # The WebSocket fails before opening: SSE is tried with no wait.
    await h.close(1006)
    assert await h.js("h.opened.map(t => t.constructor.kind)") == ["websocket", "sse"]
    await h.open()
    assert await h.state() == "connected"
    assert await h.js("h.connection.kind") == "sse"


async def test_events_advance_positions_and_stale_callbacks_are_ignored(h: Harness) -> None:
    await h.open()
    await h.receive('{"type":"brief.published","topic":"briefs","id":"e-1-5","data":{"id":"x"}}')
    assert await h.js("h.connection.positions.briefs") == "e-1-5"
    # The connection drops (1001: reconnect now) and a new attempt starts ...
    await h.js("h.old = h.last()")
    await h.close(1001)
    assert await h.next_retry_ms() < 1000
    await h.js("h.fireReconnect()")
    assert await h.attempts() == 2
    assert await h.js("h.last().positions.briefs") == "e-1-5"  # resumes with since
    # ... and a late message from the old socket changes nothing.
    stale = '{"type":"brief.published","topic":"briefs","id":"e-1-9","data":{"id":"y"}}'
    await h.js(f"h.old.handlers.message({stale!r})")
    assert await h.js("h.connection.positions.briefs") == "e-1-5"


async def test_policy_violation_stops_retrying_until_the_network_comes_back(h: Harness) -> None:
    await h.open()
    await h.close(1008, "bad frames")
    assert await h.state() == "offline"
    assert await h.js("h.pending().length") == 0  # no blind retry
    await h.page.evaluate("window.dispatchEvent(new Event('online'))")
    assert await h.attempts() == 2
    assert await h.state() == "reconnecting"


async def test_try_again_later_waits_at_least_five_seconds(h: Harness) -> None:
    await h.open()
    await h.close(1013)
    assert await h.state() == "reconnecting"
    assert await h.next_retry_ms() >= 5000


async def test_backoff_is_full_jitter_and_capped(h: Harness) -> None:
    delays = await h.js(
        "[0, 1, 2, 3, 10, 50].map(n => Array.from({length: 200}, () => h.live.backoffDelay(n)))"
    )
    for attempt, samples in zip([0, 1, 2, 3, 10, 50], delays, strict=True):
        ceiling = min(30_000, 500 * 2**attempt)
        assert all(0 <= d < ceiling for d in samples)
        assert max(samples) > ceiling / 2  # spread over the whole range, not clustered
    # Both transports failing makes the next cycle wait, growing with each failure.
    for _ in range(3):
        await h.fail_both_transports()
        await h.js("h.fireReconnect()")
    assert await h.js("h.connection.attempt") == 3


async def test_visibility_and_pageshow_reconnect_at_once(h: Harness) -> None:
    await h.fail_both_transports()
    assert await h.attempts() == 2  # now waiting on the backoff timer
    await h.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    assert await h.attempts() == 3
    await h.fail_both_transports()
    await h.page.evaluate(
        "window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"
    )
    assert await h.attempts() == 5


async def test_sse_cursor_is_the_servers_format(h: Harness) -> None:
    positions = {"briefs": "abc-1-2", "comments:a-b": "xyz-3-4"}
    cursor = await h.js(f"h.live.encodeCursor({positions!r})")
    assert events.decode_cursor(cursor) == positions


async def test_a_subscription_the_server_could_not_make_is_retried_later(h: Harness) -> None:
    await h.open()
    await h.receive('{"type":"error","code":"unavailable","message":"cannot subscribe right now"}')
    assert await h.js("h.last().closed") is True
    assert await h.state() == "reconnecting"
    assert await h.next_retry_ms() >= 5000
    # Other error frames (the client's own mistakes) do not end the connection.
    await h.js("h.fireReconnect()")
    await h.open()
    await h.receive('{"type":"error","code":"bad_frame","message":"x"}')
    assert await h.state() == "connected"
