"""The editor's desk in Chromium, with a reader's page open in a second browser context:
what the editor does reaches the reader within a second."""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.conftest import BRIEFS, COMMENTS, Newsroom, Opener, wait_live
from tests.editor_support import PASSWORD, add_editor, new_token
from tests.helpers import FACTOR, auth

SLUG = "xi-putin-talks"
SECOND_MS = 1000 * FACTOR
DESK_BRIEFS = '[data-desk="briefs"] [data-brief-id]'


async def sign_in(live_server: Any, open_page: Opener, name: str = "alice") -> Page:
    """An editor's page, signed in at /editor, its live list connected."""
    if not await live_server.services.editors.exists(name):
        await add_editor(live_server, name)
    page = (await open_page(f"{live_server.url}/editor")).page
    await expect(page).to_have_url(f"{live_server.url}/editor/login?next=/editor")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_server.url}/editor")
    await wait_live(page)
    return page


async def reader_page(live_server: Any, open_page: Opener, newsroom: Newsroom) -> Page:
    await newsroom.put_article(SLUG, title="Xi and Putin held talks in Moscow")
    page = (await open_page(f"{live_server.url}/articles/{SLUG}")).page
    await wait_live(page)
    return page


async def test_a_breaking_brief_from_the_desk_reaches_an_open_reader_page_within_a_second(
    live_server: Any, open_page: Opener, newsroom: Newsroom
) -> None:
    reader = await reader_page(live_server, open_page, newsroom)
    desk = await sign_in(live_server, open_page)

    text = desk.get_by_label("New brief")
    await text.fill("Earthquake of magnitude 6.1 near Istanbul.")
    await expect(desk.locator('[data-desk="count"]')).to_have_text("42 / 500")
    await desk.get_by_label("Breaking").check()
    await text.focus()
    started = time.monotonic()
    await desk.keyboard.press("Control+Enter")

    banner = reader.locator('[data-live="breaking"]')
    await expect(banner).to_be_visible(timeout=SECOND_MS)
    await expect(banner).to_contain_text("Earthquake of magnitude 6.1 near Istanbul.")
    assert time.monotonic() - started < 1.0 * FACTOR
    top = reader.locator(BRIEFS).first
    await expect(top).to_contain_text("Earthquake of magnitude 6.1")
    await expect(top.locator(".brief__label")).to_have_text("Breaking")

    # The desk: cleared for the next brief, the new one on top of its live list, credited.
    await expect(text).to_have_value("")
    await expect(desk.get_by_label("Breaking")).not_to_be_checked()
    await expect(desk.locator('[data-desk="publish-note"]')).to_contain_text("published at")
    mine = desk.locator(DESK_BRIEFS).first
    await expect(mine).to_contain_text("Earthquake of magnitude 6.1")
    await expect(mine).to_contain_text("by alice")
    activity = desk.locator('[data-desk="activity"] li').first
    await expect(activity).to_contain_text("alice published Earthquake of magnitude 6.1")


async def test_correct_and_retract_at_the_desk_are_followed_by_the_reader(
    live_server: Any, open_page: Opener, newsroom: Newsroom
) -> None:
    reader = await reader_page(live_server, open_page, newsroom)
    brief = await newsroom.publish("Talks ended in Moscow.", breaking=True)
    desk = await sign_in(live_server, open_page)
    row = desk.locator(f'[data-desk="briefs"] [data-brief-id="{brief["id"]}"]')
    reader_item = reader.locator(f'[data-live="briefs"] [data-brief-id="{brief["id"]}"]')
    banner = reader.locator('[data-live="breaking"]')
    await expect(banner).to_contain_text("Talks ended in Moscow.")

    await row.get_by_role("link", name="Correct").click()
    editor = row.get_by_label("Corrected text")
    await expect(editor).to_have_value("Talks ended in Moscow.")
    await editor.fill("Talks ended in Moscow without a deal.")
    await row.get_by_role("button", name="Save correction").click()
    await expect(reader_item).to_contain_text("without a deal", timeout=SECOND_MS)
    await expect(reader_item.locator(".brief__updated")).to_contain_text("Updated")
    await expect(banner).to_contain_text("without a deal")
    await expect(row).to_contain_text("corrected by alice")
    await expect(row.locator(".desk-brief__updated")).to_contain_text("Updated")

    await row.get_by_role("link", name="Retract").click()
    await expect(row).to_contain_text("Retract this brief?")
    await row.get_by_role("button", name="Keep it").click()
    await expect(row).to_contain_text("without a deal")
    await expect(reader_item).to_have_count(1)

    await row.get_by_role("link", name="Retract").click()
    await row.get_by_role("button", name="Retract").click()
    await expect(reader_item).to_have_count(0, timeout=SECOND_MS)
    await expect(banner).to_be_hidden()
    await expect(row).to_have_count(0)


async def test_hiding_a_comment_removes_it_from_the_readers_page(
    live_server: Any, open_page: Opener, newsroom: Newsroom
) -> None:
    reader = await reader_page(live_server, open_page, newsroom)
    desk = await sign_in(live_server, open_page)
    await desk.get_by_role("link", name="Comments").click()
    await expect(desk.locator('[data-live="status"]')).to_have_attribute("data-state", "connected")

    posted = await newsroom.comment(SLUG, "Troll", "Something abusive.")
    reader_comment = reader.locator(f'{COMMENTS}[data-comment-id="{posted["id"]}"]')
    await expect(reader_comment).to_have_count(1)
    # The moderation view got it live, with its article.
    row = desk.locator(f'[data-desk="comments"] [data-comment-id="{posted["id"]}"]')
    await expect(row).to_contain_text("Something abusive.")
    await expect(row).to_contain_text("Xi and Putin held talks in Moscow")

    await row.get_by_role("button", name="Hide").click()
    await expect(reader_comment).to_have_count(0, timeout=SECOND_MS)
    await expect(row).to_contain_text("Hidden by alice")
    await expect(row.locator(".desk-comment__text")).to_have_text("Something abusive.")


async def test_closing_comments_refuses_new_ones_with_a_clear_error(
    live_server: Any, open_page: Opener, newsroom: Newsroom
) -> None:
    reader = await reader_page(live_server, open_page, newsroom)
    await newsroom.comment(SLUG, "Ann", "Before closing.")
    desk = await sign_in(live_server, open_page)
    await desk.get_by_role("link", name="Comments").click()
    switch = desk.locator(f'[data-desk="comments-switch"][data-article="{SLUG}"]')
    await switch.get_by_role("button", name="Close comments").click()
    await expect(switch).to_have_attribute("data-closed", "true")
    await expect(switch.get_by_role("button")).to_have_text("Open comments")

    form = reader.locator('form[data-live="comment-form"]')
    await form.get_by_label("Your name").fill("Ben")
    await form.get_by_label("Your comment").fill("After closing.")
    await form.get_by_role("button", name="Post comment").click()
    await expect(reader.locator('[data-live="form-error"]')).to_contain_text("comments are closed")
    await expect(reader.locator(COMMENTS)).to_have_count(1)


async def test_the_desk_list_follows_other_editors_with_their_names(
    live_server: Any, open_page: Opener, api: Any
) -> None:
    desk = await sign_in(live_server, open_page)
    await add_editor(live_server, "bob")
    token = await new_token(live_server, "bob")
    response = await api.post("/api/briefs", json={"text": "Bob's brief."}, headers=auth(token))
    assert response.status_code == 201
    row = desk.locator(DESK_BRIEFS).first
    await expect(row).to_contain_text("Bob's brief.")
    await expect(row).to_contain_text("by bob")


async def test_the_publish_form_counts_characters_and_keeps_a_brief_on_one_line(
    live_server: Any, open_page: Opener
) -> None:
    desk = await sign_in(live_server, open_page)
    text = desk.get_by_label("New brief")
    publish = desk.get_by_role("button", name="Publish")
    count = desk.locator('[data-desk="count"]')
    await expect(publish).to_be_disabled()
    await text.press_sequentially("Line one")
    await text.press("Enter")
    await text.press_sequentially(" and more")
    await expect(text).to_have_value("Line one and more")
    await text.fill("é" * 500)
    await expect(count).to_have_text("500 / 500")
    await expect(publish).to_be_enabled()
    await text.fill("e\u0301" * 501)  # 501 characters after NFC, 1002 code units before
    await expect(count).to_have_text("501 / 500")
    await expect(count).to_have_attribute("data-state", "over")
    await expect(publish).to_be_disabled()
    await text.press("Control+Enter")
    await expect(desk.locator(DESK_BRIEFS)).to_have_count(0)


async def test_a_signed_out_desk_says_so_and_keeps_the_text(
    live_server: Any, open_page: Opener
) -> None:
    desk = await sign_in(live_server, open_page)
    cookies = await desk.context.cookies()
    session = next(c for c in cookies if c["name"] == "livefeed_session")
    await live_server.services.sessions.end(session["value"].rsplit(".", 1)[0])
    text = desk.get_by_label("New brief")
    await text.fill("Typed before noticing.")
    await text.press("Control+Enter")
    await expect(desk.locator('[data-desk="signed-out"]')).to_be_visible()
    await expect(text).to_have_value("Typed before noticing.")
