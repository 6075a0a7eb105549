"""Twenty classic XSS payloads as comment authors, comment texts and briefs, through the API
(live and server-rendered) and the no-JavaScript form: never code, always the same text."""

from __future__ import annotations

import unicodedata

from playwright.async_api import expect

from tests.browser.conftest import Newsroom, Visitor

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe src=javascript:alert(1)>",
    "<body onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)>",
    "{{constructor.constructor('alert(1)')()}}",
    "${alert(1)}",
    "javascript:alert(1)",
    "<style>*{background:url(javascript:alert(1))}</style>",
    "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <b>bold</b>",
]
SLUG = "xss-article"


def _shown(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


async def test_payloads_are_text_live_and_server_rendered(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    page = await visit(f"/articles/{SLUG}")
    for payload in PAYLOADS:
        await newsroom.comment(SLUG, payload[:60], payload)
        await newsroom.publish(payload[:500])
    comments = page.locator('[data-live="comments"] [data-comment-id]')
    await expect(comments).to_have_count(len(PAYLOADS))
    live_texts = await page.locator(".comment__text").all_text_contents()
    live_authors = await page.locator(".comment__author").all_text_contents()
    assert sorted(live_texts) == sorted(_shown(p) for p in PAYLOADS)
    assert sorted(live_authors) == sorted(_shown(p[:60]) for p in PAYLOADS)
    await page.reload()
    await expect(comments).to_have_count(len(PAYLOADS))
    assert sorted(await page.locator(".comment__text").all_text_contents()) == sorted(
        _shown(p) for p in PAYLOADS
    )
    brief_texts = await page.locator('[data-live="briefs"] .brief__text').all_text_contents()
    assert set(_shown(p) for p in PAYLOADS[-10:]) <= set(brief_texts)
    # No element the payloads describe exists in the page.
    for tag in (
        "script:not([src])",
        "img[src=x]",
        "iframe",
        "svg",
        "details",
        "video",
        "input[autofocus]",
    ):
        assert await page.locator(f"main {tag}").count() == 0, tag
    # open_page's teardown fails the test on any dialog, page error or CSP violation.


async def test_payloads_posted_through_the_no_js_form_stay_text(
    newsroom: Newsroom, visit: Visitor
) -> None:
    await newsroom.put_article(SLUG)
    page = await visit(f"/articles/{SLUG}", js=False)
    for payload in PAYLOADS[:8]:
        await page.fill('form[data-live="comment-form"] [name="author"]', payload[:60])
        await page.fill('form[data-live="comment-form"] [name="text"]', payload)
        await page.click('form[data-live="comment-form"] [type="submit"]')
        await page.wait_for_load_state()
    texts = await page.locator(".comment__text").all_text_contents()
    assert sorted(texts) == sorted(_shown(p) for p in PAYLOADS[:8])
