"""Threads, pending comments, featured comments and live counts in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from livefeed.settings import Settings
from tests.browser.conftest import Newsroom, Opener, Visitor, post_form, wait_live
from tests.browser.test_live_connection import NO_WEBSOCKET
from tests.helpers import FACTOR, auth

SLUG = "xi-putin-talks"
# "Within 1 s" of the write's answer (scaled on a slow machine, like every wait).
ONE_SECOND_MS = 1_000 * FACTOR


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(comment_blocklist=("idiot",))


def comment(page: Page, comment_id: str) -> Any:
    return page.locator(f'[data-live="comments"] [data-comment-id="{comment_id}"]')


async def test_replies_and_featured_comments_reach_every_open_page_live(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    first = await newsroom.comment(SLUG, "Anna", "The first thread.")
    second = await newsroom.comment(SLUG, "Ben", "The second thread.")
    writer = await visit(f"/articles/{SLUG}")
    reader = await visit(f"/articles/{SLUG}")
    # A third reader on Server-Sent Events: the new event types reach it as well.
    sse = await visit(f"/articles/{SLUG}", init_script=NO_WEBSOCKET)
    # Reply from the first page: the form carries reply_to.
    await comment(writer, first["id"]).get_by_role("link", name="Reply").click()
    await expect(writer.locator('[data-live="replying"]')).to_contain_text("Anna")
    await post_form(writer, "Cleo", "A reply to Anna.")
    reply = reader.locator(f'[data-comment-id="{first["id"]}"] [data-live="replies"] .comment')
    await expect(reply).to_contain_text("Cleo", timeout=ONE_SECOND_MS)
    await expect(reply.locator(".comment__text")).to_have_text("A reply to Anna.")
    await expect(reader.locator('[data-live="comment-count"]')).to_have_text("3 comments")
    # A reply to that reply (through the API) joins the same thread, live.
    reply_id = await reply.get_attribute("data-comment-id")
    response = await newsroom.client.post(
        f"/api/articles/{SLUG}/comments",
        json={"author": "Dan", "text": "Deeper", "reply_to": reply_id},
    )
    assert response.json()["reply_to"] == first["id"]
    replies = reader.locator(f'[data-comment-id="{first["id"]}"] [data-live="replies"] .comment')
    await expect(replies).to_have_count(2, timeout=ONE_SECOND_MS)
    count = reader.locator(f'[data-comment-id="{first["id"]}"] [data-live="reply-count"]').first
    await expect(count).to_have_text("2 replies")
    # Featuring the first thread moves it to the top on every page, live.
    top = reader.locator('[data-live="comments"] > .comment').first
    await expect(top).to_have_attribute("data-comment-id", first["id"])
    featured = await newsroom.client.post(
        f"/api/articles/{SLUG}/comments/{second['id']}/feature", headers=auth(newsroom.token)
    )
    assert featured.status_code == 200
    for page in (reader, writer, sse):
        top = page.locator('[data-live="comments"] > .comment').first
        await expect(top).to_have_attribute("data-comment-id", second["id"], timeout=ONE_SECOND_MS)
        await expect(top.locator('[data-live="featured-badge"]')).to_have_text("Featured")
        await expect(page.locator('[data-live="comment-count"]')).to_have_text("4 comments")
    assert await sse.locator('[data-live="status"]').get_attribute("data-transport") == "sse"


async def test_a_pending_comment_shows_only_to_its_author_until_approved(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    author = await visit(f"/articles/{SLUG}")
    other = await visit(f"/articles/{SLUG}")
    await post_form(author, "Eve", "What an idiot move.")  # held by the blocklist
    mine = author.locator('[data-live="comments"] .comment--pending')
    await expect(mine).to_contain_text("Awaiting moderation")
    await expect(author.locator('[data-live="form-note"]')).to_contain_text("awaiting moderation")
    # The browser remembers it across a reload; nobody else ever sees it.
    await author.reload()
    await wait_live(author)
    await expect(mine).to_contain_text("What an idiot move.")
    await expect(other.locator('[data-live="comments"] .comment')).to_have_count(0)
    assert "idiot" not in await other.content()
    pending_id = await mine.get_attribute("data-comment-id")
    approved = await newsroom.client.post(
        f"/api/articles/{SLUG}/comments/{pending_id}/approve", headers=auth(newsroom.token)
    )
    assert approved.status_code == 200
    for page in (author, other):
        shown = comment(page, str(pending_id))
        await expect(shown).to_contain_text("What an idiot move.", timeout=ONE_SECOND_MS)
        await expect(shown).not_to_have_class("comment comment--pending")
        await expect(page.locator('[data-live="comment-count"]')).to_have_text("1 comment")
    await expect(author.locator(".comment--pending")).to_have_count(0)


async def test_front_page_lists_articles_and_counts_change_live(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG, title="Talks in Moscow", summary="Leaders met.")
    brief = await newsroom.publish("Talks are over.", article=SLUG)
    page = await visit("/")
    card = page.locator('[data-live="articles"] [data-article="xi-putin-talks"]')
    await expect(card.get_by_role("link", name="Talks in Moscow")).to_have_attribute(
        "href", f"/articles/{SLUG}"
    )
    await expect(card).to_contain_text("Leaders met.")
    counts = page.locator(f'[data-comment-count="{SLUG}"]')
    await expect(counts).to_have_count(2)  # the article and the brief linked to it
    await expect(counts.first).to_have_text("0 comments")
    link = page.locator(f'[data-brief-id="{brief["id"]}"] a.brief__text')
    await expect(link).to_have_attribute("href", f"/articles/{SLUG}")
    await newsroom.comment(SLUG, "Fay", "First!")
    await expect(counts.first).to_have_text("1 comment", timeout=ONE_SECOND_MS)
    await expect(counts.nth(1)).to_have_text("· 1 comment")
    # A brief published now, linked to the article, shows and follows the count too.
    fresh = await newsroom.publish("Talks resume tomorrow.", article=SLUG)
    fresh_count = page.locator(f'[data-brief-id="{fresh["id"]}"] [data-comment-count="{SLUG}"]')
    await expect(fresh_count).to_have_text("· 1 comment")
    await newsroom.comment(SLUG, "Gus", "Second!")
    await expect(fresh_count).to_have_text("· 2 comments", timeout=ONE_SECOND_MS)
    await expect(counts.first).to_have_text("2 comments")


async def test_show_older_comments_pages_through_threads_with_and_without_javascript(
    live_server: Any, newsroom: Newsroom, open_page: Opener
) -> None:
    await newsroom.put_article(SLUG)
    posted = [await newsroom.comment(SLUG, "R", f"Comment number {i}") for i in range(53)]
    await newsroom.comment(SLUG, "S", "Reply to the oldest", reply_to=posted[0]["id"])
    threads = '[data-live="comments"] > .comment'
    for js in (True, False):
        page = (await open_page(f"{live_server.url}/articles/{SLUG}", js=js)).page
        await expect(page.locator('[data-live="comment-count"]')).to_have_text("54 comments")
        await expect(page.locator(threads)).to_have_count(50)
        await expect(page.locator(threads).first).to_contain_text("Comment number 3")
        older = page.get_by_role("link", name="Show older comments")
        await older.click()
        if js:
            await expect(page.locator(threads)).to_have_count(53)
            await expect(page.locator(threads).first).to_contain_text("Comment number 0")
            await expect(older).to_be_hidden()
        else:
            await expect(page.locator(threads)).to_have_count(3)
        oldest = page.locator(f'[data-comment-id="{posted[0]["id"]}"] [data-live="replies"]')
        await expect(oldest).to_contain_text("Reply to the oldest")
