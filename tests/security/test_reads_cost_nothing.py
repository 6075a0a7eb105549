"""Reads cost no storage: anonymous traffic never grows Redis.

The outside review measured 50 GETs of /articles/<random> leaving 50 persistent epoch keys.
"""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx
import websockets
from redis.asyncio import Redis

from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, subscribe, wait_for
from tests.test_sse import open_stream

READS_PER_KIND = 50  # pages, lists, WebSocket subscribes, SSE subscribes: 200 reads


async def _keys(redis: Redis, prefix: str) -> set[str]:
    return {key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)}


async def test_reads_of_unknown_slugs_leave_nothing_in_redis(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    prefix = live_server.settings.redis_prefix
    redis = Redis.from_url(live_server.settings.redis_url, decode_responses=True)
    try:
        # The server's own keys (the ingest stream and its consumer group) are made once at
        # startup, in the background: wait for them, so only the reads' keys are compared.
        await wait_for(lambda: redis.exists(f"{prefix}ingest"), what="the ingest stream")
        before = await _keys(redis, prefix)
        slugs = [f"no-such-{secrets.token_hex(4)}" for _ in range(READS_PER_KIND)]
        for slug in slugs:
            assert (await api.get(f"/articles/{slug}")).status_code == 404
            assert (await api.get(f"/api/articles/{slug}/comments")).status_code == 404
        assert (await api.get("/")).status_code == 200
        for slug in slugs:
            async with websockets.connect(live_server.ws_url) as ws:
                frames = await subscribe(ws, f"comments:{slug}")
                assert frames[-1]["recovered"] is True
            async with open_stream(api, [f"article:{slug}"]) as stream:
                await stream.until_subscribed()
        after = await _keys(redis, prefix)
        new = after - before
        lasting = [key for key in new if await redis.ttl(key) < 0]
        assert lasting == [], f"reads left keys without a TTL: {sorted(lasting)[:10]}"
        assert len(after) < 15, sorted(after)
    finally:
        await redis.aclose()


async def test_a_position_read_before_the_first_write_still_resumes_exactly(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    article = {"title": "Quiet", "summary": "s", "body": ["p"]}
    headers = {"Authorization": f"Bearer {live_server.token}"}
    assert (await api.put("/api/articles/quiet", json=article, headers=headers)).status_code == 201
    # No comment yet: the list answers from "no history yet", and writes nothing for it.
    position = (await api.get("/api/articles/quiet/comments")).json()["last_event_id"]
    async with websockets.connect(live_server.ws_url) as live:
        await subscribe(live, "comments:quiet", position)
        comment = {"author": "First", "text": "first comment"}
        response = await api.post("/api/articles/quiet/comments", json=comment)
        assert response.status_code == 201
        created = response.json()["id"]
        frame = json.loads(await asyncio.wait_for(live.recv(), TIMEOUT))
        assert (frame["type"], frame["data"]["id"]) == ("comment.created", created)
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "comments:quiet", position)
    assert [(f["type"], f.get("recovered")) for f in frames] == [
        ("comment.created", None),
        ("subscribed", True),
    ]
