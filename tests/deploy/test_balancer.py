"""Through the shipped load balancer's port: Chromium as a reader and as an editor, SSE, and
the per-address limits of readers who all arrive through one nginx."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from playwright.async_api import Page, expect

from livefeed.storage.editors import Editors
from livefeed.storage.keys import Keys
from tests.browser.conftest import COMMENTS, Opener, wait_live
from tests.deploy.stack import Stack
from tests.editor_support import PASSWORD
from tests.helpers import FACTOR, TIMEOUT, auth

ARTICLE = "xi-putin-moscow-talks"  # compose runs `livefeed serve --demo`
SECOND_MS = 1000 * FACTOR


def client_at(stack: Stack, source: str, **headers: str) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``source`` (127.0.0.x)."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(
        base_url=stack.url, transport=transport, timeout=TIMEOUT, headers=headers
    )


async def module_urls(page: Page) -> list[str]:
    """Every JS module URL the page fetched (cache hits included)."""
    urls: list[str] = await page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('.js'))"
    )
    return urls


async def test_chromium_reads_comments_and_an_editor_publishes_through_the_balancer(
    stack: Stack, open_page: Opener
) -> None:
    url = f"{stack.url}/articles/{ARTICLE}"
    first = (await open_page(url)).page
    second = (await open_page(url)).page
    for page in (first, second):
        await wait_live(page)
        status = page.locator('[data-live="status"]')
        # Read next is live over WebSocket, not the SSE fallback: the Origin matched.
        await expect(status).to_have_attribute("data-transport", "websocket")
    for module in await module_urls(first):
        assert "?v=" in module, f"{module} is not a versioned URL"

    # A comment from the form with JavaScript, then one from a page without it.
    before = await second.locator(COMMENTS).count()
    form = first.locator('form[data-live="comment-form"]')
    await form.get_by_label("Your name").fill("Ana")
    await form.get_by_label("Your comment").fill("Posted with JavaScript through nginx")
    await form.get_by_role("button", name="Post comment").click()
    await expect(second.locator(COMMENTS)).to_have_count(before + 1)
    await expect(second.locator(COMMENTS).first).to_contain_text("with JavaScript through nginx")

    plain = (await open_page(url, js=False)).page
    form = plain.locator('form[data-live="comment-form"]')
    await form.get_by_label("Your name").fill("Olga")
    await form.get_by_label("Your comment").fill("Posted without JavaScript through nginx")
    async with plain.expect_navigation():
        await form.get_by_role("button", name="Post comment").click()
    assert plain.url.startswith(f"{url}?posted="), plain.url
    await expect(second.locator(COMMENTS)).to_have_count(before + 2)
    await expect(first.locator(COMMENTS)).to_have_count(before + 2)

    # An editor signs in at /editor (same-origin checks pass behind nginx) and publishes.
    admin = aioredis.Redis.from_url(stack.redis_url)
    try:
        editors = Editors(admin, Keys(stack.compose_prefix))
        if not await editors.exists("alice"):
            await editors.add("alice", PASSWORD)
    finally:
        await admin.aclose()
    desk = (await open_page(f"{stack.url}/editor")).page
    await expect(desk).to_have_url(f"{stack.url}/editor/login?next=/editor")
    await desk.get_by_label("Name").fill("alice")
    await desk.get_by_label("Password").fill(PASSWORD)
    await desk.get_by_role("button", name="Sign in").click()
    await expect(desk).to_have_url(f"{stack.url}/editor")
    await wait_live(desk)
    text = desk.get_by_label("New brief")
    await text.fill("Breaking through the balancer: talks ended.")
    await desk.get_by_label("Breaking").check()
    await text.focus()
    started = time.monotonic()
    await desk.keyboard.press("Control+Enter")
    for page in (first, second):
        banner = page.locator('[data-live="breaking"]')
        await expect(banner).to_contain_text("talks ended.", timeout=SECOND_MS)
    shown_after = time.monotonic() - started
    assert shown_after < 1.0 * FACTOR
    print(f"[deploy] breaking brief from the desk on both reader pages after {shown_after:.2f}s")


async def test_pages_revalidate_through_the_balancer_on_every_replica(stack: Stack) -> None:
    # nginx passes ETag, If-None-Match and 304 through; every replica of one deploy tags
    # the same page alike, so a revalidation is 304 whichever replica answers it.
    async with httpx.AsyncClient(base_url=stack.url, timeout=TIMEOUT) as api:
        page = await api.get(f"/articles/{ARTICLE}")
        etag = page.headers["etag"]
        assert page.headers["cache-control"].startswith("public, max-age=0, s-maxage=")
        for _ in range(6):  # least_conn spreads these over the replicas
            again = await api.get(f"/articles/{ARTICLE}", headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.headers["etag"] == etag
        text = f"revalidated {time.time()}"
        published = await api.post("/api/briefs", json={"text": text}, headers=auth(stack.token))
        assert published.status_code == 201, published.text
        changed = await api.get(f"/articles/{ARTICLE}", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and text in changed.text


async def test_sse_through_the_balancer_is_not_buffered(stack: Stack) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=TIMEOUT) as api,
        api.stream("GET", "/events", params={"topic": "briefs"}) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        text = f"SSE through nginx {time.time()}"
        published = await api.post("/api/briefs", json={"text": text}, headers=auth(stack.token))
        assert published.status_code == 201, published.text
        sent = time.monotonic()

        async def arrival() -> float:
            async for line in lines:
                if line.startswith("data:") and text in line:
                    return time.monotonic() - sent
            raise AssertionError("the stream ended")

        took = await asyncio.wait_for(arrival(), 5 * FACTOR)
    assert took < 1.0 * FACTOR, f"the event took {took:.2f}s: buffered by the proxy?"
    print(f"[deploy] SSE event through nginx after {took * 1000:.0f} ms")


async def test_comment_budgets_are_per_source_address(stack: Stack) -> None:
    async def post_six(source: str, forge: bool) -> list[int]:
        answers = []
        async with client_at(stack, source) as api:
            for n in range(6):
                # A forged X-Forwarded-For changes nothing: nginx appends the real peer.
                headers = {"X-Forwarded-For": f"198.51.100.{n}"} if forge else {}
                comment = {"author": "Reader", "text": f"from {source}, comment {n}"}
                response = await api.post(
                    f"/api/articles/{ARTICLE}/comments", json=comment, headers=headers
                )
                answers.append(response.status_code)
        return answers

    # compose runs with the default budget, 5 comments a minute per address.
    assert await post_six("127.0.0.70", forge=False) == [201] * 5 + [429]
    assert await post_six("127.0.0.71", forge=True) == [201] * 5 + [429]
    async with client_at(stack, "127.0.0.72") as api:
        comment = {"author": "Reader", "text": "a third reader still may"}
        fresh = await api.post(f"/api/articles/{ARTICLE}/comments", json=comment)
        assert fresh.status_code == 201


async def test_live_connections_are_capped_per_address_not_per_balancer(stack: Stack) -> None:
    """The default cap, 100 live connections per address and process, behind three replicas:
    one address holds 3 x 100 readers, its next one is refused, another address is not."""
    cap = 100 * len(stack.nodes)
    held: list[Any] = []
    try:
        # One by one, so least_conn fills the replicas evenly (as a steady arrival would).
        for _ in range(cap):
            held.append(
                await websockets.connect(
                    stack.ws_url, local_addr=("127.0.0.62", 0), open_timeout=TIMEOUT
                )
            )
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(
                stack.ws_url, local_addr=("127.0.0.62", 0), open_timeout=TIMEOUT
            )
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body)["error"]["code"] == "rate_limited"
        async with websockets.connect(
            stack.ws_url, local_addr=("127.0.0.63", 0), open_timeout=TIMEOUT
        ) as other:
            await other.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(other.recv(), TIMEOUT)) == {"type": "pong"}
    finally:
        await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
    print(f"[deploy] one address held {len(held)} readers over 3 replicas; the next got 429")


async def test_101_readers_from_one_address_meet_the_default_cap_of_one_process(
    stack: Stack,
) -> None:
    """The cap as configured (default 100 per address and process), met by the 101st."""
    node = stack.nodes[0]
    url = f"ws://127.0.0.1:{node.port}/ws"
    held: list[Any] = []
    try:
        for _ in range(100):
            held.append(
                await websockets.connect(url, local_addr=("127.0.0.64", 0), open_timeout=TIMEOUT)
            )
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(url, local_addr=("127.0.0.64", 0), open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 429
    finally:
        await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
