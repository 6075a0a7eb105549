"""A reader's article page in Chromium: server-rendered, then live over WebSocket or SSE."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import (
    BRIEFS,
    COMMENT_FORM,
    COMMENTS,
    Newsroom,
    Opener,
    Visitor,
    brief_ids,
    post_form,
    wait_live,
)

SLUG = "xi-putin-talks"


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
    await expect(time).to_have_text(re.compile(r"^(\d+ \w+, )?\d\d:\d\d$"))
    await expect(page.get_by_text("What is your opinion on this topic?")).to_be_visible()
    await expect(page.locator('[data-live="comment-count"]')).to_have_text(
        "Leave the first comment"
    )
    form = page.locator('form[data-live="comment-form"]')
    await expect(form.get_by_label("Your name")).to_be_visible()
    await expect(form.get_by_label("Your comment")).to_be_visible()
    await wait_live(page)


async def test_published_brief_appears_at_top_without_reload(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    first = await newsroom.publish("First brief.")
    page = await visit(f"/articles/{SLUG}")

    fresh = await newsroom.publish("Breaking off: a brand new brief.")
    top = page.locator(BRIEFS).first
    await expect(top).to_have_attribute("data-brief-id", fresh["id"])
    await expect(top).to_contain_text("Breaking off: a brand new brief.")
    assert await brief_ids(page) == [fresh["id"], first["id"]]


async def test_comment_posted_on_second_page_appears_on_first(
    live_server: Any, newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    reader = await visit(f"/articles/{SLUG}")
    writer = await visit(f"/articles/{SLUG}")

    await post_form(writer, "Anna", "A historic meeting.\nWorth watching.")

    for page in (writer, reader):
        await expect(page.locator(COMMENTS)).to_have_count(1)
        await expect(page.locator(COMMENTS).first).to_contain_text("Anna")
        await expect(page.locator(COMMENTS).first).to_contain_text("A historic meeting.")
        await expect(page.locator('[data-live="comment-count"]')).to_have_text("1 comment")
    # Posting with fetch keeps the writer on the page, with the text box cleared.
    await expect(writer.locator(COMMENT_FORM).get_by_label("Your comment")).to_have_value("")
    assert writer.url == f"{live_server.url}/articles/{SLUG}"


async def test_comment_with_markup_renders_as_text(newsroom: Newsroom, visit: Visitor) -> None:
    await newsroom.put_article(SLUG)
    page = await visit(f"/articles/{SLUG}")
    attack = "<img src=x onerror=alert(1)>"
    live = await newsroom.comment(SLUG, "<b>mallory</b>", attack)
    item = page.locator(f'[data-comment-id="{live["id"]}"]')
    await expect(item.locator(".comment__text")).to_have_text(attack)
    await expect(item.locator(".comment__author")).to_have_text("<b>mallory</b>")
    await expect(page.locator("[data-live=comments] img, [data-live=comments] b")).to_have_count(0)

    # Server-rendered, after a reload, it is text too (autoescaped).
    await page.reload()
    await expect(item.locator(".comment__text")).to_have_text(attack)
    await expect(page.locator("[data-live=comments] img")).to_have_count(0)
    # The fixture fails the test if an alert() dialog opened.


async def test_corrected_and_retracted_brief_update_both_pages(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    keep = await newsroom.publish("A brief that stays.")
    brief = await newsroom.publish("Fiers in Canada.")
    pages = [await visit(f"/articles/{SLUG}"), await visit("/")]

    await newsroom.correct(brief["id"], text="Fires in Canada.")
    for page in pages:
        item = page.locator(f'[data-brief-id="{brief["id"]}"]')
        await expect(item.locator(".brief__text")).to_have_text("Fires in Canada.")
        await expect(item.locator(".brief__updated")).to_contain_text("Updated")
        assert await brief_ids(page) == [brief["id"], keep["id"]]  # corrected in place

    await newsroom.retract(brief["id"])
    for page in pages:
        await expect(page.locator(f'[data-brief-id="{brief["id"]}"]')).to_have_count(0)
        await expect(page.locator(BRIEFS)).to_have_count(1)


async def test_breaking_brief_shows_a_dismissible_banner(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    page = await visit(f"/articles/{SLUG}")
    banner = page.locator('[data-live="breaking"]')
    await expect(banner).to_be_hidden()

    brief = await newsroom.publish("Earthquake reported.", breaking=True)
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Earthquake reported.")
    item = page.locator(f'[data-brief-id="{brief["id"]}"]')
    await expect(item.locator(".brief__label")).to_have_text("Breaking")

    await banner.get_by_role("button", name="Dismiss breaking news").click()
    await expect(banner).to_be_hidden()
    await expect(item).to_be_visible()  # dismissing the banner keeps the brief


async def test_new_briefs_wait_behind_a_pill_when_the_list_is_out_of_view(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG, body=["A long paragraph. " * 60] * 6)
    first = await newsroom.publish("Already there.")
    # A phone-sized window: the "Read next" column sits below the long article.
    page = await visit(f"/articles/{SLUG}", viewport={"width": 390, "height": 700})
    title = await page.title()

    one = await newsroom.publish("First while reading.")
    two = await newsroom.publish("Second while reading.")
    pill = page.locator('[data-live="new-briefs"]')
    await expect(pill).to_have_text("2 new briefs")
    await expect(page).to_have_title(f"(2) {title}")
    assert await brief_ids(page) == [first["id"]]  # nothing moved under the reader

    await pill.click()
    await expect(pill).to_be_hidden()
    await expect(page).to_have_title(title)
    assert await brief_ids(page) == [two["id"], one["id"], first["id"]]


async def test_hidden_comment_disappears(newsroom: Newsroom, visit: Visitor) -> None:
    await newsroom.put_article(SLUG)
    keep = await newsroom.comment(SLUG, "Ben", "Interesting.")
    abusive = await newsroom.comment(SLUG, "Troll", "Something abusive.")
    page = await visit(f"/articles/{SLUG}")
    await expect(page.locator(COMMENTS)).to_have_count(2)
    await expect(page.locator('[data-live="comment-count"]')).to_have_text("2 comments")

    await newsroom.hide(SLUG, abusive["id"])
    await expect(page.locator(f'[data-comment-id="{abusive["id"]}"]')).to_have_count(0)
    await expect(page.locator(f'[data-comment-id="{keep["id"]}"]')).to_have_count(1)
    await expect(page.locator('[data-live="comment-count"]')).to_have_text("1 comment")


async def test_article_update_changes_the_page_in_place(newsroom: Newsroom, visit: Visitor) -> None:
    await newsroom.put_article(SLUG, title="First headline")
    page = await visit(f"/articles/{SLUG}")
    await newsroom.put_article(SLUG, title="Better headline", body=["Rewritten."])
    await expect(page.locator("h1")).to_have_text("Better headline")
    await expect(page.locator('[data-live="article-body"] p')).to_have_text(["Rewritten."])


async def test_unknown_article_is_a_404_page(live_server: Any, open_page: Opener) -> None:
    watched = await open_page(f"{live_server.url}/articles/no-such-article")
    page = watched.page
    response = await page.request.get(
        f"{live_server.url}/articles/no-such-article", headers={"Accept": "text/html"}
    )
    assert response.status == 404
    assert "text/html" in response.headers["content-type"]
    await expect(page.locator("h1")).to_have_text("Page not found")
