"""Bounded replays: a client cannot make the server pull a topic's history out of Redis in a
loop. The outside review found one 100-byte frame pulling ~1,000 events out of Redis, and
nothing stopping a client from repeating it.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import websockets
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from livefeed import limits
from tests.conftest import LiveServer
from tests.helpers import FACTOR, TIMEOUT, auth, subscribe

BRIEFS = 150
VERSIONS = 260
TEXT = "x" * 480


async def _net_output(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_net_output_bytes"])


async def _publish_history(live_server: LiveServer, api: httpx.AsyncClient) -> str:
    gate = asyncio.Semaphore(10)

    async def one(i: int) -> None:
        async with gate:
            body = {"text": f"{i} {TEXT}"}
            response = await api.post("/api/briefs", json=body, headers=auth(live_server.token))
            assert response.status_code == 201

    await asyncio.gather(*(one(i) for i in range(BRIEFS)))
    position = (await api.get("/api/briefs")).json()["last_event_id"]
    return str(position).split("-", 1)[0] + "-0-0"


async def test_a_re_subscribe_loop_is_rate_limited_and_redis_reads_stay_bounded(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    origin = await _publish_history(live_server, api)
    redis = Redis.from_url(live_server.settings.redis_url)
    try:
        # What one full replay costs Redis, measured on this very history.
        before = await _net_output(redis)
        async with websockets.connect(live_server.ws_url) as ws:
            frames = await subscribe(ws, "briefs", origin)
        one_replay = await _net_output(redis) - before
        assert len(frames) == BRIEFS + 1 and one_replay > BRIEFS * len(TEXT)

        attempts = 2 * limits.SUBSCRIBES_MAX + 5
        got: list[dict[str, Any]] = []
        before = await _net_output(redis)
        async with websockets.connect(live_server.ws_url, max_queue=None) as ws:
            frame = json.dumps({"type": "subscribe", "topic": "briefs", "since": origin})
            for _ in range(attempts):
                await ws.send(frame)
            try:
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
            except ConnectionClosed:
                pass  # too many bad frames: closed with 1008
            assert ws.close_code == 1008
        spent = await _net_output(redis) - before
    finally:
        await redis.aclose()
    errors = [f for f in got if f["type"] == "error"]
    assert errors and {f["code"] for f in errors} == {"rate_limited"}
    served = [f for f in got if f["type"] == "subscribed"]
    assert len(served) == limits.SUBSCRIBES_MAX
    # At most the allowed replays were read out of Redis, not one per frame sent.
    assert spent < (limits.SUBSCRIBES_MAX + 2) * one_replay, (spent, one_replay)


async def test_pings_are_not_rate_limited(live_server: LiveServer) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        for _ in range(3 * limits.SUBSCRIBES_MAX):
            await ws.send(json.dumps({"type": "ping"}))
        for _ in range(3 * limits.SUBSCRIBES_MAX):
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == {"type": "pong"}


async def _connect_without_reading(live_server: LiveServer) -> Any:
    """A reader that never reads: its receive buffer is set small before it connects, so
    the TCP window it offers stays small too, and its client queues one message at most."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", live_server.port))  # loopback: accepted by the kernel at once
    return await websockets.connect(
        live_server.ws_url, sock=sock, max_queue=1, open_timeout=TIMEOUT
    )


async def test_one_replay_stops_at_the_readers_queue_bound(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    # A history of ~16 MB: 260 versions of a 60 KB article.
    body = ["y" * limits.ARTICLE_PARAGRAPH_MAX] * 6
    gate = asyncio.Semaphore(8)

    async def put(i: int) -> None:
        async with gate:
            article = {"title": f"Version {i}", "summary": "s", "body": body}
            response = await api.put(
                "/api/articles/big", json=article, headers=auth(live_server.token)
            )
            assert response.status_code in (200, 201)

    await asyncio.gather(*(put(i) for i in range(VERSIONS)))
    history = VERSIONS * 6 * limits.ARTICLE_PARAGRAPH_MAX
    redis = Redis.from_url(live_server.settings.redis_url, decode_responses=True)
    try:
        epoch = await redis.get(f"{live_server.settings.redis_prefix}{{article:big}}:epoch")
        origin = f"{epoch}-0-0"
        before = await _net_output(redis)
        ws = await _connect_without_reading(live_server)
        try:
            frame = {"type": "subscribe", "topic": "article:big", "since": origin}
            await ws.send(json.dumps(frame))
            # Wait until the server stops reading: Redis's output stays put (but for these
            # INFO calls and the hub's probes, a few KB).
            last, still = before, 0
            while still < 10:
                await asyncio.sleep(0.1 * FACTOR)
                now = await _net_output(redis)
                still = still + 1 if now - last < 16 * 1024 else 0
                last = now
        finally:
            ws.transport.abort()  # it never reads: do not wait on a closing handshake
        spent = last - before
    finally:
        await redis.aclose()
    # What was read is what the reader could hold: its 1 MiB queue, what the kernel's socket
    # buffers took (up to tcp_wmem's maximum), and the page that overflowed the queue.
    kernel = _max_send_buffer()
    bound = limits.SEND_QUEUE_BYTES + kernel + 2 * limits.REPLAY_PAGE_BYTES + 1024 * 1024
    assert history > 2 * bound
    assert spent < bound, (spent, bound, history)


def _max_send_buffer() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024
