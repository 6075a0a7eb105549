"""Bounded replays: a client cannot make the server pull a topic's history out of Redis in a
loop. The outside review found one 100-byte frame pulling ~1,000 events out of Redis, and
nothing stopping a client from repeating it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from livefeed import limits
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth, subscribe

BRIEFS = 150
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
