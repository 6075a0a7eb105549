"""A deploy that changes one JS module: a page loaded after it runs only the new release's
modules, never the new ``main.js`` against an old module that a browser cached for good."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.async_api import Browser, Page

from tests.browser.conftest import BROWSER_TIMEOUT_MS, wait_live
from tests.deploy.stack import Stack
from tests.deploy.test_balancer import ARTICLE, module_urls
from tests.helpers import FACTOR, TIMEOUT, wait_for


def _versions(urls: list[str]) -> dict[str, str]:
    """``live/render.js`` -> its ``v`` for every static JS URL the page fetched."""
    found = {}
    for url in urls:
        parts = urlsplit(url)
        if parts.path.startswith("/static/") and parts.path.endswith(".js"):
            found[parts.path.removeprefix("/static/")] = parse_qs(parts.query).get("v", [""])[0]
    return found


def _on_disk(static: Path, name: str) -> str:
    return hashlib.sha256((static / name).read_bytes()).hexdigest()[:12]


async def _marker(page: Page) -> str | None:
    """What the page's own render.js module exports as DEPLOYED (the same module instance)."""
    value: str | None = await page.evaluate(
        "import('/static/live/render.js').then(m => m.DEPLOYED ?? null)"
    )
    return value


async def _redeploy(stack: Stack) -> None:
    """Every process stopped (drained) and started again on the changed release."""
    for node in stack.nodes:
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)
    for node in stack.nodes:
        await asyncio.to_thread(stack.stop_node, node)
    for node in stack.nodes:
        stack.start_node(node)
    for node in stack.nodes:
        await asyncio.to_thread(stack.wait_ready, node)

    async def balancer_serves() -> bool:
        async with httpx.AsyncClient(base_url=stack.url, timeout=TIMEOUT) as api:
            return (await api.get(f"/articles/{ARTICLE}")).status_code == 200

    await wait_for(balancer_serves, 15 * FACTOR, "the balancer to serve the new release")


async def test_a_page_loaded_after_a_deploy_runs_no_mix_of_old_and_new_modules(
    stack: Stack, browser: Browser
) -> None:
    static = stack.static_dir
    url = f"{stack.url}/articles/{ARTICLE}"
    # One browser (one HTTP cache) before and after the deploy, as a returning reader.
    context = await browser.new_context()
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    errors: list[str] = []
    try:
        before = await context.new_page()
        before.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await before.goto(url)
        await wait_live(before)
        old = _versions(await module_urls(before))
        assert {"live/main.js", "live/render.js", "live/connection.js"} <= set(old), old
        for name, version in old.items():
            assert version == _on_disk(static, name), f"{name} fetched as v={version}"
        assert await _marker(before) is None

        # The deploy: one module changes on disk (nginx serves it) and in every process.
        marker = f"release-{time.time_ns()}"
        render = static / "live" / "render.js"
        render.write_text(render.read_text() + f'\nexport const DEPLOYED = "{marker}";\n')
        await _redeploy(stack)
        assert await _marker(before) is None, "the old page keeps its own modules"
        # Tabs of one browser share one connection (the leader's); this one leaves, so the
        # next page leads its own and does not wait on this one's reconnect backoff.
        await before.close()

        after = await context.new_page()
        after.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await after.goto(url)
        await wait_live(after)
        new = _versions(await module_urls(after))
        for name, version in new.items():
            # Every module of the page is the one on disk now: none of the old release.
            assert version == _on_disk(static, name), f"{name} fetched as v={version}"
        assert new["live/render.js"] != old["live/render.js"]
        assert new["live/main.js"] == old["live/main.js"], "unchanged modules keep their URL"
        assert await _marker(after) == marker, "the page runs the new render.js"
    finally:
        await context.close()
    assert [e for e in errors if "Content Security Policy" in e] == []
