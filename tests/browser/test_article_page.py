"""A reader's article page in Chromium: server-rendered, then live over WebSocket or SSE."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import Newsroom, Opener, wait_live

SLUG = "xi-putin-talks"
BRIEFS = '[data-live="briefs"] [data-brief-id]'
COMMENTS = '[data-live="comments"] [data-comment-id]'


async def brief_ids(page: Any) -> list[str]:
    ids: list[str] = await page.eval_on_selector_all(BRIEFS, "els => els.map(e => e.dataset.briefId)")
    return ids


async def test_article_page_shows_article_read_next_and_comment_form(
    live_server: Any, newsroom: Newsroom, open_page: Opener
) -> None:
    await newsroom.put_article(SLUG, title="Xi and Putin held talks in Moscow")
    older = await newsroom.publish("Wildfires in western Canada.")
    newer = await newsroom.publish("Quarry collapse in West Java.", article=SLUG)

    watched = await open_page(f"{live_server.url}/articles/{SLUG}")
    page = watched.page
    await expect(page.locator("h1")).to_have_count(1)
    await expect(page.locator("h1")).to_have_text("Xi and Putin held talks in Moscow")
    await expect(page.locator(".read-next h2")).to_have_text("Read next")
    assert await brief_ids(page) == [newer["id"], older["id"]]
    link = page.locator(f'[data-brief-id="{newer["id"]}"] a')
    await expect(link).to_have_attribute("href", f"/articles/{SLUG}")
    # Times are rewritten to the reader's local HH:MM (the server wrote UTC).
    time = page.locator(f'[data-brief-id="{older["id"]}"] time')
    await expect(time).to_have_attribute("datetime", older["published_at"])
    await expect(time).to_have_text(__import__("re").compile(r"^(\d+ \w+, )?\d\d:\d\d$"))
    await expect(page.get_by_text("What is your opinion on this topic?")).to_be_visible()
    await expect(page.locator('[data-live="comment-count"]')).to_have_text(
        "Leave the first comment"
    )
    form = page.locator('form[data-live="comment-form"]')
    await expect(form.get_by_label("Your name")).to_be_visible()
    await expect(form.get_by_label("Your comment")).to_be_visible()
    await wait_live(page)


async def test_published_brief_appears_at_top_without_reload(
    live_server: Any, newsroom: Newsroom, open_page: Opener
) -> None:
    await newsroom.put_article(SLUG)
    first = await newsroom.publish("First brief.")
    watched = await open_page(f"{live_server.url}/articles/{SLUG}")
    page = watched.page
    await wait_live(page)

    fresh = await newsroom.publish("Breaking off: a brand new brief.")
    top = page.locator(BRIEFS).first
    await expect(top).to_have_attribute("data-brief-id", fresh["id"])
    await expect(top).to_contain_text("Breaking off: a brand new brief.")
    assert await brief_ids(page) == [fresh["id"], first["id"]]
