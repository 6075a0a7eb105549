"""Embedding on another site: the framed Read next page and the /static/embed.js module.

A second local server on other ports plays the partner site: its page on a listed origin
frames /embed/read-next and imports /static/embed.js; its page on an unlisted origin is
refused both (no CORS headers, frame-ancestors).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from livefeed.settings import Settings
from tests.browser.conftest import BROWSER_TIMEOUT_MS, Newsroom, Opener
from tests.helpers import FACTOR, free_port, wait_for

# The bar: a brief published after the page is live shows within 1 s.
SHOWN_WITHIN_MS = 1000 * FACTOR

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Partner site</title></head>
<body>
<h1>Partner site</h1>
<iframe id="frame" title="Latest news" src="{live}/embed/read-next"
        width="400" height="500"></iframe>
<div id="column" data-livefeed-read-next data-limit="5"
     style="--livefeed-accent: rgb(1, 2, 3)"></div>
<script type="module" src="{live}/static/embed.js"></script>
</body></html>
"""


def loopback_origin(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@dataclass
class PartnerSite:
    """A plain HTTP server answering every GET with the host page, on two ports."""

    listed_port: int = field(default_factory=free_port)
    unlisted_port: int = field(default_factory=free_port)
    live: str = ""
    servers: list[asyncio.Server] = field(default_factory=list)

    @property
    def listed(self) -> str:
        """The origin on the server's lists (CORS and frame-ancestors)."""
        return loopback_origin(self.listed_port)

    @property
    def unlisted(self) -> str:
        """An origin on no list: refused."""
        return loopback_origin(self.unlisted_port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = HOST_PAGE.format(live=self.live).encode()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        for port in (self.listed_port, self.unlisted_port):
            self.servers.append(await asyncio.start_server(self._serve, "127.0.0.1", port))

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> PartnerSite:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@pytest.fixture
def partner_site() -> PartnerSite:
    """The partner site, not started yet: its ports are known before the server's settings."""
    return PartnerSite()


@pytest.fixture
def settings(settings: Settings, partner_site: PartnerSite) -> Settings:
    listed = (partner_site.listed,)
    return settings.with_(allowed_origins=listed, embed_origins=listed)


@pytest.fixture
async def partner(partner_site: PartnerSite, live_server: Any) -> AsyncIterator[PartnerSite]:
    """The partner site up on both its origins, its host page using ``live_server``."""
    partner_site.live = live_server.url
    async with partner_site:
        yield partner_site


async def test_a_listed_site_shows_new_briefs_in_the_frame_and_the_module(
    live_server: Any, newsroom: Newsroom, partner: PartnerSite, open_page: Opener
) -> None:
    earlier = await newsroom.publish("Earlier brief", article="talks")
    page = (await open_page(f"{partner.listed}/")).page
    framed = page.frame_locator("#frame")
    column = page.locator("#column")
    await expect(framed.locator(f'[data-brief-id="{earlier["id"]}"]')).to_be_visible()
    await expect(column.locator(f'[data-brief-id="{earlier["id"]}"]')).to_be_visible()
    await expect(framed.locator('[data-live="status"]')).to_have_attribute(
        "data-state", "connected"
    )
    await expect(column).to_have_attribute("data-livefeed-state", "connected")

    fresh = await newsroom.publish("Just in from the newsroom", breaking=True)
    selector = f'[data-brief-id="{fresh["id"]}"]'
    await expect(framed.locator(selector)).to_be_visible(timeout=SHOWN_WITHIN_MS)
    await expect(column.locator(selector)).to_be_visible(timeout=SHOWN_WITHIN_MS)
    await expect(column.locator(selector)).to_contain_text("Just in from the newsroom")

    # The module's links go to the livefeed server, styled by the host's custom property.
    link = column.locator(f'[data-brief-id="{earlier["id"]}"] a')
    await expect(link).to_have_attribute("href", f"{live_server.url}/articles/talks")
    await expect(link).to_have_css("color", "rgb(1, 2, 3)")
    # Retractions reach the module too.
    await newsroom.retract(fresh["id"])
    await expect(column.locator(selector)).to_have_count(0)
    metrics = (await newsroom.client.get("/metrics")).text
    assert 'livefeed_embed_readers_total{kind="iframe"} 1.0' in metrics
    assert 'livefeed_embed_readers_total{kind="module"} 1.0' in metrics


async def test_the_module_falls_back_to_sse_and_resumes(
    live_server: Any, newsroom: Newsroom, partner: PartnerSite, open_page: Opener
) -> None:
    # WebSocket refused by the browser: the module must go on over Server-Sent Events.
    no_websocket = "window.WebSocket = function () { throw new Error('no WebSocket'); };"
    page = (await open_page(f"{partner.listed}/", init_script=no_websocket)).page
    column = page.locator("#column")
    await expect(column).to_have_attribute("data-livefeed-state", "connected")
    await expect(column).to_have_attribute("data-livefeed-transport", "sse")
    fresh = await newsroom.publish("Over SSE")
    await expect(column.locator(f'[data-brief-id="{fresh["id"]}"]')).to_be_visible(
        timeout=SHOWN_WITHIN_MS
    )
    # Restart the server: the module reconnects and resumes, missing nothing.
    await live_server.stop()
    await expect(column).not_to_have_attribute("data-livefeed-state", "connected")
    await live_server.start()
    missed = await newsroom.publish("Published while reconnecting")
    await expect(column.locator(f'[data-brief-id="{missed["id"]}"]')).to_be_visible(
        timeout=int(40_000 * FACTOR)
    )


async def test_an_unlisted_site_gets_no_cors_and_cannot_frame(
    live_server: Any, newsroom: Newsroom, partner: PartnerSite, browser: Browser
) -> None:
    brief = await newsroom.publish("Only for listed sites")
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        for path in ("/api/briefs", "/static/embed.js", "/feeds/briefs.json"):
            foreign = await client.get(path, headers={"Origin": partner.unlisted})
            assert "access-control-allow-origin" not in foreign.headers
            listed = await client.get(path, headers={"Origin": partner.listed})
            assert listed.headers["access-control-allow-origin"] == partner.listed
            assert "access-control-allow-credentials" not in listed.headers
        for origin, allowed in ((partner.listed, True), (partner.unlisted, False)):
            preflight = await client.options(
                "/api/briefs",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "accept",
                },
            )
            assert ("access-control-allow-origin" in preflight.headers) is allowed
        # Writes never get CORS, even from a listed origin.
        write = await client.options(
            "/api/briefs",
            headers={"Origin": partner.listed, "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in write.headers
        framed = await client.get("/embed/read-next")
        assert f"frame-ancestors {partner.listed};" in framed.headers["content-security-policy"]

    context = await browser.new_context()
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    try:
        page = await context.new_page()
        refused: list[str] = []
        page.on("console", lambda msg: refused.append(msg.text))
        await page.goto(f"{partner.unlisted}/")
        await wait_for(
            lambda: any("frame-ancestors" in m for m in refused),
            what="Chromium to refuse the frame (frame-ancestors)",
        )
        await wait_for(
            lambda: any("CORS" in m or "Access-Control-Allow-Origin" in m for m in refused),
            what="Chromium to refuse the module (no CORS headers)",
        )
        frame = page.frame_locator("#frame")
        await expect(frame.locator(f'[data-brief-id="{brief["id"]}"]')).to_have_count(0)
        await expect(page.locator("#column [data-brief-id]")).to_have_count(0)
    finally:
        await context.close()
