"""The moderation queue on the desk in Chromium: live across processes, keyboard driven."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from livefeed.settings import Settings
from tests.browser.conftest import Newsroom, Opener
from tests.browser.test_editor import sign_in
from tests.conftest import LiveServer
from tests.helpers import FACTOR

SLUG = "xi-putin-talks"
QUEUE = '[data-desk="queue"] [data-comment-id]'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(comment_blocklist=("idiot",))


async def test_the_queue_is_live_across_processes_and_works_from_the_keyboard(
    live_server: Any, second_server: LiveServer, open_page: Opener, newsroom: Newsroom
) -> None:
    await newsroom.put_article(SLUG, title="Talks in Moscow")
    fine = await newsroom.comment(SLUG, "Ann", "A fair point.")
    desk = await sign_in(live_server, open_page)
    await desk.get_by_role("link", name="Moderation").click()
    await expect(desk.locator('[data-desk="queue-empty"]')).to_be_visible()
    await expect(desk.locator('[data-live="status"]')).to_have_attribute("data-state", "connected")

    # A reader on the other process reports a comment: it is in the queue within a second.
    async with httpx.AsyncClient(base_url=second_server.url) as other:
        started = time.monotonic()
        response = await other.post(
            f"/api/articles/{SLUG}/comments/{fine['id']}/reports", json={"reason": "spam"}
        )
        assert response.status_code == 202
        await expect(desk.locator(QUEUE)).to_have_count(1, timeout=1000 * FACTOR)
        assert time.monotonic() - started < 1.0 * FACTOR
        await expect(desk.locator(QUEUE).first).to_contain_text("Reported 1 time")
        await expect(desk.locator('[data-desk="queue-badge"]')).to_have_text("1")
        # A held comment arrives, first in the queue (pending before reported).
        held = await other.post(
            f"/api/articles/{SLUG}/comments", json={"author": "Bo", "text": "idiot take"}
        )
        assert held.json()["status"] == "pending"
    await expect(desk.locator(QUEUE)).to_have_count(2)
    first = desk.locator(QUEUE).first
    await expect(first).to_contain_text("Awaiting moderation")
    await expect(desk.locator('[data-desk="queue-badge"]')).to_have_text("2")

    # j/k move, a approves the selected pending comment.
    await desk.locator("h1").click()
    await desk.keyboard.press("j")
    await expect(desk.locator(QUEUE).nth(1)).to_have_class(
        "queue-item queue-item--reported queue-item--selected"
    )
    await desk.keyboard.press("k")
    await expect(first).to_have_class("queue-item queue-item--pending queue-item--selected")
    await desk.keyboard.press("a")
    await expect(desk.locator(QUEUE)).to_have_count(1)
    listing = (await newsroom.client.get(f"/api/articles/{SLUG}/comments")).json()
    assert [t["id"] for t in listing["items"]] == [held.json()["id"], fine["id"]]
    # h hides the reported one: the queue is empty, and the reader's page lost it.
    await desk.keyboard.press("h")
    await expect(desk.locator('[data-desk="queue-empty"]')).to_be_visible()
    await expect(desk.locator('[data-desk="queue-badge"]')).to_be_hidden()
    listing = (await newsroom.client.get(f"/api/articles/{SLUG}/comments")).json()
    assert [t["id"] for t in listing["items"]] == [held.json()["id"]]
    credits = await live_server.services.desk.credits("comment", [f"{SLUG}/{fine['id']}"])
    assert credits[f"{SLUG}/{fine['id']}"]["hidden"] == "alice"
