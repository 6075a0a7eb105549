"""Take the docs' screenshot of the desk's moderation queue with headless Chromium.

    python tests/browser/screenshot_queue.py [docs/moderation-queue.png]

Starts ``livefeed serve --demo`` (embedded Redis in a temporary data dir) with a word on
the blocklist, posts comments the way readers would (two held for moderation, one
reported), signs in to the desk as the operator and shoots the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httpx
from playwright.async_api import async_playwright, expect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.browser.screenshot import SLUG, TOKEN, demo_server, launch_chromium  # noqa: E402


async def readers_write(api: httpx.AsyncClient) -> None:
    base = f"/api/articles/{SLUG}/comments"
    comments = [
        ("Lena", "Whatever one thinks of it, this partnership shapes the next decade."),
        ("Marcus", "Only idiots believe a word of this communiqué."),
        (
            "Deals4U",
            "Cheap flights to Moscow: https://a.example https://b.example https://c.example",
        ),
        ("Tom", "Nobody asked about the anniversary parade, stay on topic."),
    ]
    posted = []
    for author, text in comments:
        response = await api.post(base, json={"author": author, "text": text})
        response.raise_for_status()
        posted.append(response.json())
    for n, reason in enumerate(("off_topic", "abuse", "off_topic")):
        response = await api.post(
            f"{base}/{posted[3]['id']}/reports",
            json={"reason": reason, **({"note": "Trolling the thread"} if n == 0 else {})},
            headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
        )
        response.raise_for_status()


async def shoot(url: str, output: Path) -> None:
    async with async_playwright() as playwright, httpx.AsyncClient(base_url=url) as api:
        await readers_write(api)
        browser = await launch_chromium(playwright)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, reduced_motion="reduce"
        )
        page = await context.new_page()
        await page.goto(f"{url}/editor/login?next=/editor/moderation")
        await page.get_by_label("Name").fill("operator")
        await page.get_by_label("Password").fill(TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{url}/editor/moderation")
        await expect(page.locator('[data-live="status"]')).to_have_attribute(
            "data-state", "connected"
        )
        await expect(page.locator('[data-desk="queue"] [data-comment-id]')).to_have_count(3)
        await page.locator("h1").click()
        await page.keyboard.press("j")
        output.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(output), full_page=True)
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=str(ROOT / "docs" / "moderation-queue.png"))
    options = parser.parse_args()
    # A word on the blocklist holds a comment; loopback is the trusted proxy, so the three
    # reports (X-Forwarded-For) come from three readers.
    env = {"LIVEFEED_COMMENT_BLOCKLIST": "idiots", "LIVEFEED_TRUSTED_PROXIES": "127.0.0.1"}
    with demo_server(**env) as url:
        asyncio.run(shoot(url, Path(options.output)))
    print(f"saved {options.output}")


if __name__ == "__main__":
    main()
