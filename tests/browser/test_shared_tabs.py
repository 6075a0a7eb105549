"""The tabs of one browser share one live connection (Web Locks + BroadcastChannel)."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import BRIEFS, BROWSER_TIMEOUT_MS, COMMENTS, Newsroom, wait_live
from tests.helpers import wait_for

ONE, TWO = "talks-in-moscow", "wildfires-in-canada"


async def role(page: Page) -> str | None:
    return await page.get_attribute('[data-live="status"]', "data-role")


async def test_tabs_share_one_connection_and_hand_it_over(
    live_server: Any, newsroom: Newsroom, browser: Browser
) -> None:
    await newsroom.put_article(ONE)
    await newsroom.put_article(TWO)
    readers = live_server.services.readers
    context = await browser.new_context()
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    sockets: dict[int, int] = {}
    try:
        pages = []
        for n, slug in enumerate([ONE, ONE, TWO]):
            page = await context.new_page()
            sockets[n] = 0
            page.on("websocket", lambda _ws, n=n: sockets.__setitem__(n, sockets[n] + 1))
            await page.goto(f"{live_server.url}/articles/{slug}")
            await wait_live(page)
            pages.append(page)
        assert [await role(page) for page in pages] == ["leader", "follower", "follower"]
        assert sockets == {0: 1, 1: 0, 2: 0}  # one socket, which took the new topics on
        await wait_for(lambda: readers.counts()["ws"] == 1, what="one WebSocket for 3 tabs")

        brief = await newsroom.publish("Seen by every tab.")
        for page in pages:
            await expect(page.locator(BRIEFS).first).to_have_attribute("data-brief-id", brief["id"])
        on_two = await newsroom.comment(TWO, "Tove", "About the fires.")
        await expect(pages[2].locator(COMMENTS)).to_have_count(1)
        on_one = await newsroom.comment(ONE, "Olle", "About the talks.")
        for page in pages[:2]:
            await expect(page.locator(COMMENTS)).to_have_count(1)
            await expect(page.locator(COMMENTS).first).to_have_attribute(
                "data-comment-id", on_one["id"]
            )
        await expect(pages[2].locator(COMMENTS)).to_have_count(1)  # only its own article's
        assert on_two["id"] != on_one["id"]

        # The leader closes: another tab takes the lock and connects for both.
        await pages[0].close()
        survivors = pages[1:]

        async def handed_over() -> bool:
            roles = sorted([await role(page) or "" for page in survivors])
            return roles == ["follower", "leader"] and readers.counts()["ws"] == 1

        await wait_for(handed_over, timeout=BROWSER_TIMEOUT_MS / 1000, what="a new leader")
        for page in survivors:
            await wait_live(page)
        after = await newsroom.publish("After the handover.")
        for page in survivors:
            await expect(page.locator(BRIEFS).first).to_have_attribute("data-brief-id", after["id"])
            await expect(page.locator(f'[data-brief-id="{brief["id"]}"]')).to_have_count(1)
        late = await newsroom.comment(TWO, "Tove", "Still following.")
        await expect(survivors[1].locator(f'[data-comment-id="{late["id"]}"]')).to_have_count(1)
        await expect(survivors[1].locator(COMMENTS)).to_have_count(2)
        assert readers.counts()["ws"] == 1
    finally:
        await context.close()
