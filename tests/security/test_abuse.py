"""Abuse on the open internet: huge bodies, slow headers, bad frames. Loopback, bounded."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from livefeed import limits
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth, recv_json, wait_for


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def test_a_10_mb_post_is_refused_fast_without_reading_it(live_server: LiveServer) -> None:
    body = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    before = _rss_kb()
    async with live_server.client() as api:
        started = time.perf_counter()
        headers = {"Content-Type": "application/json", **auth(live_server.token)}
        response = await api.post("/api/briefs", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"

        # Chunked (no Content-Length): refused as soon as the limit is passed.
        async def chunks():
            for _ in range(160):
                yield b" " * 65536

        chunked = await api.post("/api/articles/x/comments", content=chunks())
        assert chunked.status_code == 413
    growth_mb = (_rss_kb() - before) / 1024
    print(
        f"10 MB POST: 413 in {elapsed * 1000:.0f} ms, RSS growth {growth_mb:.1f} MB (with client)"
    )
    assert elapsed < 2
    assert growth_mb < 40  # the test process holds the 10 MB body itself


async def test_slow_headers_are_cut_off_while_the_api_stays_responsive(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "HTTP_HEADER_TIMEOUT", 1.0)
    slow = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
        writer.write(b"GET /api/briefs HTTP/1.1\r\nHost: x\r\n")  # ... and never the end
        await writer.drain()
        slow.append((reader, writer))
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    try:
        async with live_server.client() as api:
            started = time.perf_counter()
            assert (await api.get("/api/briefs")).status_code == 200
            assert time.perf_counter() - started < 1
        for reader, _ in [*slow, (idle_reader, idle_writer)]:
            # The server answers 408 and closes: the read ends (EOF) within the deadline.
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
            assert data == b"" or data.startswith(b"HTTP/1.1 408")
    finally:
        for _, writer in [*slow, (idle_reader, idle_writer)]:
            writer.close()


async def test_invalid_utf8_closes_with_1007(live_server: LiveServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    try:
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert response.startswith(b"HTTP/1.1 101")
        payload = b"\xff\xfe"  # not UTF-8, in a *text* frame
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        frame = await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
        assert frame[0] == 0x88  # close
        assert int.from_bytes(frame[2:4], "big") == 1007
    finally:
        writer.close()


async def test_fifty_bad_frames_close_with_1008_and_others_are_unaffected(
    live_server: LiveServer,
) -> None:
    async with websockets.connect(live_server.ws_url) as bystander:
        async with websockets.connect(live_server.ws_url) as abuser:
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(50):
                    await abuser.send("garbage")
                while True:
                    await recv_json(abuser)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        await bystander.send(json.dumps({"type": "ping"}))
        assert await recv_json(bystander) == {"type": "pong"}


async def test_oversized_and_binary_frames(live_server: LiveServer) -> None:
    async with websockets.connect(live_server.ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * limits.WS_FRAME_MAX}))
        assert (await recv_json(ws))["code"] == "frame_too_large"
        await ws.send(b"\x00" * 10)
        assert (await recv_json(ws))["code"] == "bad_frame"
        await ws.send("x" * (limits.WS_MESSAGE_MAX + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_foreign_origins_are_refused_for_live_streams(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=TIMEOUT) as api:
        sse = await api.get("/events?topic=briefs", headers={"Origin": "https://evil.example"})
        assert sse.status_code == 403
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await websockets.connect(live_server.ws_url, origin="https://evil.example")
    assert refused.value.response.status_code == 403


async def test_the_connection_past_the_per_address_cap_is_refused(settings) -> None:
    server = LiveServer(settings.with_(max_connections_per_ip=3))
    await server.start()
    clients = [await websockets.connect(server.ws_url) for _ in range(3)]
    try:
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(server.ws_url)
        assert refused.value.response.status_code == 429
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as api:
            sse = await api.get("/events?topic=briefs")
            assert sse.status_code == 429
            assert sse.headers["retry-after"]
            assert (await api.get("/api/briefs")).status_code == 200  # plain requests are fine
        await clients[0].close()
        await wait_for(lambda: server.services.readers.counts()["ws"] == 2, what="the close")
        async with websockets.connect(server.ws_url) as again:
            await again.send(json.dumps({"type": "ping"}))
            assert await recv_json(again) == {"type": "pong"}
    finally:
        for ws in clients:
            await ws.close()
        await server.stop()


async def test_security_headers_on_every_response_and_hsts_only_over_https(settings) -> None:
    from ipaddress import ip_network

    server = LiveServer(settings.with_(trusted_proxies=(ip_network("127.0.0.1/32"),)))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as api:
            plain = await api.get("/api/briefs")
            for name in ("x-content-type-options", "referrer-policy", "permissions-policy"):
                assert plain.headers[name]
            assert "strict-transport-security" not in plain.headers
            https = await api.get("/api/briefs", headers={"X-Forwarded-Proto": "https"})
            assert https.headers["strict-transport-security"].startswith("max-age=")
    finally:
        await server.stop()


async def test_cross_site_writes_and_foreign_origin_form_posts_are_refused(
    live_server: LiveServer,
) -> None:
    async with live_server.client() as api:
        body = {"title": "t", "summary": "s", "body": ["p"]}
        await api.put("/api/articles/csrf", json=body, headers=auth(live_server.token))
        cross = {"Sec-Fetch-Site": "cross-site"}
        comment = {"author": "Eve", "text": "posted from elsewhere"}
        refused = await api.post("/api/articles/csrf/comments", json=comment, headers=cross)
        assert refused.status_code == 403
        form = "author=Eve&text=posted+from+elsewhere"
        form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
        refused = await api.post(
            "/articles/csrf/comments", content=form, headers={**form_headers, **cross}
        )
        assert refused.status_code == 403
        foreign = await api.post(
            "/articles/csrf/comments",
            content=form,
            headers={**form_headers, "Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        # Reading stays open to everyone, and same-site posting works.
        assert (await api.get("/api/briefs", headers=cross)).status_code == 200
        same = await api.post(
            "/api/articles/csrf/comments", json=comment, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert same.status_code == 201
        listed = (await api.get("/api/articles/csrf/comments")).json()["items"]
        assert len(listed) == 1
