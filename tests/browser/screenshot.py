"""Take the README's screenshot of the live demo article with headless Chromium.

    python tests/browser/screenshot.py [docs/screenshot.png] [--dark]

Starts ``livefeed serve --demo`` (embedded Redis in a temporary data dir) on a free port,
adds a couple of comments and a fresh brief the way readers and editors would, waits
until the page is live and shows them, and saves the shot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.async_api import Browser, Playwright, async_playwright, expect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.helpers import free_port  # noqa: E402

SLUG = "xi-putin-moscow-talks"
TOKEN = "screenshot-token"


def start_server(port: int, data_dir: str, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIVEFEED_EDITOR_TOKEN": TOKEN, **extra_env}
    args = [sys.executable, "-m", "livefeed", "serve", "--demo", "--port", str(port)]
    args += ["--data-dir", data_dir]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("livefeed serve exited before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("livefeed serve was not ready within 30 s")


@contextlib.contextmanager
def demo_server(**env: str) -> Iterator[str]:
    """``livefeed serve --demo`` (with ``env`` added) on a free port, in a data dir of its
    own that goes away with it; its URL, once it is ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="livefeed-shot-") as data_dir:
        process = start_server(port, data_dir, env)
        try:
            wait_ready(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(30)


async def launch_chromium(playwright: Playwright) -> Browser:
    executable = chromium_path()
    if executable is None:
        raise SystemExit("Chromium not found: apt-get install -y chromium")
    return await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


async def shoot(url: str, output: Path, dark: bool) -> None:
    async with async_playwright() as playwright, httpx.AsyncClient(base_url=url) as api:
        browser = await launch_chromium(playwright)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 1500},
            color_scheme="dark" if dark else "light",
            reduced_motion="reduce",  # no half-faded highlight in the picture
        )
        page = await context.new_page()
        await page.goto(f"{url}/articles/{SLUG}")
        status = page.locator('[data-live="status"]')
        await expect(status).to_have_attribute("data-state", "connected")
        comments = [
            ("Lena", "Whatever one thinks of it, this partnership shapes the next decade."),
            ("Marcus", "Interesting timing, right before the anniversary celebrations."),
        ]
        for author, text in comments:
            response = await api.post(
                f"/api/articles/{SLUG}/comments", json={"author": author, "text": text}
            )
            response.raise_for_status()
        response = await api.post(
            "/api/briefs",
            json={
                "text": "Kremlin says the leaders will meet again later this year.",
                "article": SLUG,
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        response.raise_for_status()
        brief_id = response.json()["id"]
        await expect(page.locator(f'[data-brief-id="{brief_id}"]')).to_be_visible()
        await expect(page.locator('[data-live="comments"] [data-comment-id]')).to_have_count(2)
        output.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(output))
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--dark", action="store_true", help="prefer the dark colour scheme")
    options = parser.parse_args()
    with demo_server() as url:
        asyncio.run(shoot(url, Path(options.output), options.dark))
    print(f"saved {options.output}")


if __name__ == "__main__":
    main()
