"""connection.js on its own, in Chromium, with fake transports: what each close code does.

The page under test is a plain page of ours (so the module loads under the real CSP); the
fakes record what the Connection asks of them and let the test play the server.
"""

from __future__ import annotations

from typing import Any

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


async def harness(live_server: Any, open_page: Opener) -> Any:
    page = (await open_page(f"{live_server.url}/articles/none")).page
    await page.evaluate(HARNESS)
    return page


async def js(page: Any, expression: str) -> Any:
    return await page.evaluate(f"() => {{ const h = window.harness; return {expression}; }}")


async def test_websocket_is_tried_first_then_sse_at_once(
    live_server: Any, open_page: Opener
) -> None:
    page = await harness(live_server, open_page)
    assert await js(page, "h.opened.map(t => t.constructor.kind)") == ["websocket"]
    assert await js(page, "h.last().positions") == {"briefs": "e-1-0", "comments:a": "e-2-0"}
    # The WebSocket fails before opening: SSE is tried with no wait.
    await js(page, "h.last().handlers.close({code: 1006})")
    assert await js(page, "h.opened.map(t => t.constructor.kind)") == ["websocket", "sse"]
    await js(page, "h.last().handlers.open()")
    assert await js(page, "h.connection.state") == "connected"
    assert await js(page, "h.connection.kind") == "sse"


async def test_events_advance_positions_and_stale_callbacks_are_ignored(
    live_server: Any, open_page: Opener
) -> None:
    page = await harness(live_server, open_page)
    await js(page, "h.last().handlers.open()")
    frame = '{"type":"brief.published","topic":"briefs","id":"e-1-5","data":{"id":"x"}}'
    await js(page, f"h.last().handlers.message({frame!r})")
    assert await js(page, "h.connection.positions.briefs") == "e-1-5"
    # The connection drops (1001: reconnect now) and a new attempt starts ...
    await js(page, "(h.old = h.last(), h.old.handlers.close({code: 1001}))")
    assert await js(page, "h.pending().length") == 1
    assert await js(page, "h.pending()[0].ms") < 1000
    await js(page, "h.fireReconnect()")
    assert await js(page, "h.opened.length") == 2
    assert await js(page, "h.last().positions.briefs") == "e-1-5"  # resumes with since
    # ... and a late message from the old socket changes nothing.
    stale = '{"type":"brief.published","topic":"briefs","id":"e-1-9","data":{"id":"y"}}'
    await js(page, f"h.old.handlers.message({stale!r})")
    assert await js(page, "h.connection.positions.briefs") == "e-1-5"


async def test_policy_violation_stops_retrying_until_the_network_comes_back(
    live_server: Any, open_page: Opener
) -> None:
    page = await harness(live_server, open_page)
    await js(page, "h.last().handlers.open()")
    await js(page, "h.last().handlers.close({code: 1008, reason: 'bad frames'})")
    assert await js(page, "h.connection.state") == "offline"
    assert await js(page, "h.pending().length") == 0  # no blind retry
    await page.evaluate("window.dispatchEvent(new Event('online'))")
    assert await js(page, "h.opened.length") == 2
    assert await js(page, "h.connection.state") == "reconnecting"


async def test_try_again_later_waits_at_least_five_seconds(
    live_server: Any, open_page: Opener
) -> None:
    page = await harness(live_server, open_page)
    await js(page, "h.last().handlers.open()")
    await js(page, "h.last().handlers.close({code: 1013})")
    assert await js(page, "h.connection.state") == "reconnecting"
    delays = await js(page, "h.pending().map(t => t.ms)")
    assert len(delays) == 1 and delays[0] >= 5000


async def test_backoff_is_full_jitter_and_capped(live_server: Any, open_page: Opener) -> None:
    page = await harness(live_server, open_page)
    delays = await js(
        page,
        "[0, 1, 2, 3, 10, 50].map(n => Array.from({length: 200}, () => h.live.backoffDelay(n)))",
    )
    for attempt, samples in zip([0, 1, 2, 3, 10, 50], delays, strict=True):
        ceiling = min(30_000, 500 * 2**attempt)
        assert all(0 <= d < ceiling for d in samples)
        assert max(samples) > ceiling / 2  # spread over the whole range, not clustered
    # Both transports failing makes the next cycle wait, growing with each failure.
    for _ in range(3):
        await js(page, "h.last().handlers.close({code: 1006})")  # websocket
        await js(page, "h.last().handlers.close({code: 1006})")  # sse
        await js(page, "h.fireReconnect()")
    assert await js(page, "h.connection.attempt") == 3


async def test_visibility_and_pageshow_reconnect_at_once(
    live_server: Any, open_page: Opener
) -> None:
    page = await harness(live_server, open_page)
    await js(page, "h.last().handlers.close({code: 1006})")
    await js(page, "h.last().handlers.close({code: 1006})")
    assert await js(page, "h.opened.length") == 2  # now waiting on the backoff timer
    await page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    assert await js(page, "h.opened.length") == 3
    await js(page, "h.last().handlers.close({code: 1006})")
    await js(page, "h.last().handlers.close({code: 1006})")
    await page.evaluate(
        "window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"
    )
    assert await js(page, "h.opened.length") == 5


async def test_sse_cursor_is_the_servers_format(live_server: Any, open_page: Opener) -> None:
    page = await harness(live_server, open_page)
    positions = {"briefs": "abc-1-2", "comments:a-b": "xyz-3-4"}
    cursor = await js(page, f"h.live.encodeCursor({positions!r})")
    assert events.decode_cursor(cursor) == positions


async def test_a_subscription_the_server_could_not_make_is_retried_later(
    live_server: Any, open_page: Opener
) -> None:
    page = await harness(live_server, open_page)
    await js(page, "h.last().handlers.open()")
    frame = '{"type":"error","code":"unavailable","message":"cannot subscribe right now"}'
    await js(page, f"h.last().handlers.message({frame!r})")
    assert await js(page, "h.last().closed") is True
    assert await js(page, "h.connection.state") == "reconnecting"
    delays = await js(page, "h.pending().map(t => t.ms)")
    assert len(delays) == 1 and delays[0] >= 5000
    # Other error frames (the client's own mistakes) do not end the connection.
    await js(page, "h.fireReconnect()")
    await js(page, "h.last().handlers.open()")
    own_mistake = '{"type":"error","code":"bad_frame","message":"x"}'
    await js(page, f"h.last().handlers.message({own_mistake!r})")
    assert await js(page, "h.connection.state") == "connected"
