"""The live connection in Chromium: resuming after a restart, SSE fallback, refetching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import (
    BRIEFS,
    COMMENTS,
    RECONNECT_TIMEOUT_MS,
    Newsroom,
    Visitor,
    brief_ids,
    wait_live,
)
from tests.conftest import LiveServer

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
async def newsdesk(second_server: LiveServer) -> AsyncIterator[Newsroom]:
    """The newsroom on a second livefeed process sharing the Redis, as behind a load
    balancer: it keeps publishing while the reader's own server restarts."""
    async with second_server.client() as client:
        yield Newsroom(client, second_server.token)


async def test_after_a_server_restart_every_brief_shows_exactly_once(
    live_server: Any, newsroom: Newsroom, newsdesk: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    before = await newsroom.publish("Before the restart.")
    page = await visit(f"/articles/{SLUG}")
    seen = await newsroom.publish("Seen live.")
    await expect(page.locator(BRIEFS).first).to_have_attribute("data-brief-id", seen["id"])

    await live_server.stop()
    status = page.locator('[data-live="status"]')
    await expect(status).not_to_have_attribute("data-state", "connected")
    # Published while the page has no connection at all.
    missed = []
    for n in range(3):
        missed.append((await newsdesk.publish(f"Missed {n}."))["id"])
    await live_server.start()
    await wait_live(page, RECONNECT_TIMEOUT_MS)
    after = await newsroom.publish("After the restart.")

    expected = [after["id"], *reversed(missed), seen["id"], before["id"]]
    await expect(page.locator(BRIEFS)).to_have_count(len(expected))
    assert await brief_ids(page) == expected
    for brief_id in expected:
        await expect(page.locator(f'[data-brief-id="{brief_id}"]')).to_have_count(1)


async def test_without_websockets_the_page_updates_over_sse(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    page = await visit(f"/articles/{SLUG}", init_script=NO_WEBSOCKET)
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
    live_server: Any, newsroom: Newsroom, newsdesk: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    page = await visit(f"/articles/{SLUG}", init_script=NO_WEBSOCKET)
    first = await newsroom.publish("Over SSE, before.")
    await expect(page.locator(BRIEFS)).to_have_count(1)

    await live_server.stop()
    missed = await newsdesk.publish("Missed over SSE.")
    await live_server.start()
    await wait_live(page, RECONNECT_TIMEOUT_MS)
    last = await newsroom.publish("Over SSE, after.")
    await expect(page.locator(BRIEFS)).to_have_count(3)
    assert await brief_ids(page) == [last["id"], missed["id"], first["id"]]


# Rewrites the page's embedded positions into ids from a history the server does not have
# (as after Redis lost its data), after parsing and before the live client's module runs.
STALE_POSITIONS = """
document.addEventListener("readystatechange", () => {
  if (document.readyState !== "interactive") return;
  const block = document.getElementById("live-config");
  const config = JSON.parse(block.textContent);
  for (const topic of Object.keys(config.positions)) config.positions[topic] = "zzzzzzzz-1-0";
  block.textContent = JSON.stringify(config);
});
"""


async def test_unrecoverable_position_refetches_the_lists(
    newsroom: Newsroom, visit: Visitor
) -> None:
    """A page whose embedded positions the server cannot serve is told recovered: false."""
    await newsroom.put_article(SLUG)
    old = await newsroom.publish("Rendered with the page.")
    await newsroom.comment(SLUG, "Cleo", "Rendered with the page.")
    meanwhile: list[str] = []

    async def publish_before_connecting(route: Route) -> None:
        # After the page was rendered, before its live client runs: with positions the
        # server cannot resume from, these reach the page only through the HTTP refetch.
        meanwhile.append((await newsroom.publish("Published meanwhile."))["id"])
        await newsroom.comment(SLUG, "Dan", "Posted meanwhile.")
        await route.continue_()

    async def delay_live_client(page: Page) -> None:
        await page.route("**/static/live/main.js*", publish_before_connecting)

    page = await visit(
        f"/articles/{SLUG}", init_script=STALE_POSITIONS, before_goto=delay_live_client
    )
    await expect(page.locator('[data-live="status"]')).to_have_attribute(
        "data-transport", "websocket"
    )
    await expect(page.locator(BRIEFS)).to_have_count(2)
    assert await brief_ids(page) == [*meanwhile, old["id"]]
    await expect(page.locator(COMMENTS)).to_have_count(2)
    # And it stays live after the refetch.
    late = await newsroom.publish("Published after connecting.")
    await expect(page.locator(BRIEFS).first).to_have_attribute("data-brief-id", late["id"])
