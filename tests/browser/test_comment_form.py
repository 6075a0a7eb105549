"""The comment form: with fetch when JavaScript runs, as a plain HTML form when it does not."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from livefeed.settings import Rate, Settings
from tests.browser.conftest import COMMENT_FORM, COMMENTS, Newsroom, Visitor

SLUG = "xi-putin-talks"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two comments a minute per address, so the rate limit is easy to reach."""
    return settings.with_(comment_rate=Rate(2, 60))


@pytest.fixture
async def page_without_js(newsroom: Newsroom, visit: Visitor) -> Page:
    """The article's page in a browser with JavaScript off: its form posts as plain HTML."""
    await newsroom.put_article(SLUG)
    return await visit(f"/articles/{SLUG}", js=False)


async def post_without_js(page: Page, author: str, text: str | None = None) -> None:
    """Fill in the comment form (``text`` left empty when None) and submit it: the browser
    navigates to the server's answer."""
    form = page.locator(COMMENT_FORM)
    await form.get_by_label("Your name").fill(author)
    if text is not None:
        await form.get_by_label("Your comment").fill(text)
    async with page.expect_navigation():
        await form.get_by_role("button", name="Post comment").click()


async def test_form_without_javascript_posts_and_redirects_back(
    live_server: Any, page_without_js: Page
) -> None:
    page = page_without_js
    await post_without_js(page, "Olga", "Posted <without> JavaScript & co.")

    assert page.url.startswith(f"{live_server.url}/articles/{SLUG}?posted=")
    await expect(page.locator(COMMENTS)).to_have_count(1)
    await expect(page.locator(".comment__text")).to_have_text("Posted <without> JavaScript & co.")
    await expect(page.locator('[data-live="comment-count"]')).to_have_text("1 comment")


async def test_form_without_javascript_shows_the_error_next_to_the_form(
    page_without_js: Page,
) -> None:
    page = page_without_js
    await post_without_js(page, "Olga")

    error = page.locator('[data-live="form-error"]')
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("text must not be empty")
    # What the reader typed is kept.
    await expect(page.locator(COMMENT_FORM).get_by_label("Your name")).to_have_value("Olga")
    await expect(page.locator(COMMENTS)).to_have_count(0)


async def test_form_post_status_codes(live_server: Any, newsroom: Newsroom) -> None:
    await newsroom.put_article(SLUG)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    client = newsroom.client
    ok = await client.post(f"/articles/{SLUG}/comments", content=b"author=A&text=Hi", headers=form)
    assert ok.status_code == 303
    assert ok.headers["location"].startswith(f"/articles/{SLUG}?posted=")
    bad = await client.post(f"/articles/{SLUG}/comments", content=b"author=A", headers=form)
    assert bad.status_code == 422
    assert "text must not be empty" in bad.text
    assert "text/html" in bad.headers["content-type"]
    missing = await client.post("/articles/nope/comments", content=b"author=A&text=x", headers=form)
    assert missing.status_code == 404
    huge = await client.post(
        f"/articles/{SLUG}/comments", content=b"text=" + b"x" * 70_000, headers=form
    )
    assert huge.status_code == 413
    foreign = await client.post(
        f"/articles/{SLUG}/comments",
        content=b"author=A&text=Hi",
        headers={**form, "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    limited = await client.post(
        f"/articles/{SLUG}/comments", content=b"author=A&text=Again", headers=form
    )
    assert limited.status_code == 303  # the second of two allowed
    limited = await client.post(
        f"/articles/{SLUG}/comments", content=b"author=A&text=Third", headers=form
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "text/html" in limited.headers["content-type"]


async def test_form_with_javascript_shows_server_errors_and_honours_retry_after(
    live_server: Any, newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    page = await visit(f"/articles/{SLUG}")
    form = page.locator(COMMENT_FORM)
    error = page.locator('[data-live="form-error"]')
    submit = form.get_by_role("button", name="Post comment")

    await form.get_by_label("Your name").fill("Pia")
    await submit.click()
    await expect(error).to_contain_text("text must not be empty")  # the server's words
    assert page.url == f"{live_server.url}/articles/{SLUG}"  # no navigation

    for n in range(2):
        await form.get_by_label("Your comment").fill(f"Comment {n}.")
        await submit.click()
        await expect(page.locator(COMMENTS)).to_have_count(n + 1)
        await expect(error).to_be_hidden()

    await form.get_by_label("Your comment").fill("One too many.")
    await submit.click()
    await expect(error).to_contain_text("too many")
    await expect(submit).to_be_disabled()
    await expect(page.locator('[data-live="form-note"]')).to_contain_text("You can post again in")
    await expect(page.locator(COMMENTS)).to_have_count(2)
