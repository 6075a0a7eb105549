"""The front page: the latest briefs, live, and "load more" over the API."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
from playwright.async_api import expect

from tests.browser.conftest import BRIEFS, Newsroom, Opener, brief_ids, wait_live


async def test_front_page_lists_briefs_live_and_loads_more(
    live_server: Any, newsroom: Newsroom, open_page: Opener
) -> None:
    published = [(await newsroom.publish(f"Brief number {n}."))["id"] for n in range(25)]
    newest_first = list(reversed(published))
    page = (await open_page(f"{live_server.url}/")).page
    await expect(page.locator("h1")).to_have_text("Latest news")
    await expect(page.locator(BRIEFS)).to_have_count(20)
    assert await brief_ids(page) == newest_first[:20]
    await wait_live(page)

    fresh = await newsroom.publish("Just in.")
    await expect(page.locator(BRIEFS).first).to_have_attribute("data-brief-id", fresh["id"])

    await page.get_by_role("link", name="Load more").click()
    await expect(page.locator(BRIEFS)).to_have_count(26)
    assert await brief_ids(page) == [fresh["id"], *newest_first]
    await expect(page.get_by_role("link", name="Load more")).to_be_hidden()
    assert page.url == f"{live_server.url}/"


async def test_front_page_load_more_works_without_javascript(
    live_server: Any, newsroom: Newsroom, open_page: Opener
) -> None:
    published = [(await newsroom.publish(f"Brief number {n}."))["id"] for n in range(22)]
    page = (await open_page(f"{live_server.url}/", js=False)).page
    await page.get_by_role("link", name="Load more").click()
    await expect(page.locator("h1")).to_have_text("Earlier news")
    assert await brief_ids(page) == [published[1], published[0]]


async def test_pages_send_a_strict_content_security_policy(live_server: Any) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        for path in ("/", "/articles/missing"):
            response = await client.get(path, headers={"Accept": "text/html"})
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "same-origin"
            # No inline handlers, inline styles or inline scripts for the policy to block.
            assert not re.search(r"<[^>]+\son[a-z]+\s*=", response.text)
            assert not re.search(r"<[^>]+\sstyle\s*=", response.text)
            scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.text, re.S)
            for attrs, body in scripts:
                if "importmap" in attrs:
                    # The one inline script: the import map, allowed by its exact hash.
                    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                    assert f"'sha256-{digest}'" in policy
                else:
                    assert "src=" in attrs or "application/json" in attrs, attrs
        page = await client.get("/")
        css = page.text.split('href="/static/livefeed.css?v=', 1)[1].split('"', 1)[0]
        asset = await client.get(f"/static/livefeed.css?v={css}")
        assert asset.status_code == 200
        assert "immutable" in asset.headers["cache-control"]
