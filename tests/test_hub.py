"""The hub survives its pub/sub connection dropping: readers miss nothing, get nothing twice."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
import websockets

from livefeed.fanout.hub import Hub
from tests.conftest import LiveServer, RedisServer
from tests.helpers import auth, publish_while_busy, recv_json, subscribe, wait_for


async def test_readers_miss_nothing_when_the_pubsub_connection_is_killed(
    live_server: LiveServer, redis_server: RedisServer, api
) -> None:
    hub: Hub = live_server.services.hub
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        async with websockets.connect(live_server.ws_url) as ws:
            await subscribe(ws, "briefs")
            published = []
            for round_ in range(3):
                before = hub.reconnects
                await admin.client_kill_filter(_type="pubsub")
                # Publish at once, while the hub is still finding out and reconnecting.
                for i in range(5):
                    response = await api.post(
                        "/api/briefs",
                        json={"text": f"r{round_} b{i}"},
                        headers=auth(live_server.token),
                    )
                    published.append(response.json()["id"])
                await wait_for(lambda b=before: hub.reconnects > b, what="the hub to reconnect")
            received = []
            while len(received) < len(published):
                received.append((await recv_json(ws))["data"]["id"])
            assert received == published
            # Nothing is delivered twice, even after the replays.
            await api.post("/api/briefs", json={"text": "after"}, headers=auth(live_server.token))
            assert (await recv_json(ws))["data"]["text"] == "after"
    finally:
        await admin.aclose()


async def test_readyz_reports_pubsub_while_disconnected(
    live_server: LiveServer, redis_server: RedisServer, api
) -> None:
    assert (await api.get("/readyz")).status_code == 200
    hub: Hub = live_server.services.hub
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        before = hub.reconnects
        await admin.client_kill_filter(_type="pubsub")
        await wait_for(lambda: hub.reconnects > before, what="the hub to notice")
        await wait_for(lambda: hub.is_connected, what="the hub to reconnect")
        assert (await api.get("/readyz")).status_code == 200
    finally:
        await admin.aclose()


async def test_one_subscription_per_topic_however_many_readers(
    live_server: LiveServer, redis_server: RedisServer
) -> None:
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    channel = f"{live_server.settings.redis_prefix}{{briefs}}:live"
    clients = [await websockets.connect(live_server.ws_url) for _ in range(5)]
    try:
        await asyncio.gather(*(subscribe(ws, "briefs") for ws in clients))
        counts = dict(await admin.pubsub_numsub(channel))
        assert counts[channel] == 1
        for ws in clients:
            await ws.close()
        await wait_for(
            lambda: not live_server.services.hub.topics(), what="the topic to be dropped"
        )

        async def unsubscribed() -> bool:
            return dict(await admin.pubsub_numsub(channel))[channel] == 0

        await wait_for(unsubscribed, what="the channel to be unsubscribed")
    finally:
        for ws in clients:
            await ws.close()
        await admin.aclose()


async def test_a_lost_live_message_is_noticed_and_replayed_in_order(
    live_server: LiveServer, redis_server: RedisServer, api
) -> None:
    from livefeed.events import frame_parts
    from livefeed.storage.keys import Keys

    keys = Keys(live_server.settings.redis_prefix)
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    hub: Hub = live_server.services.hub
    try:
        async with websockets.connect(live_server.ws_url) as ws:
            await subscribe(ws, "briefs")
            # An event that reaches the history but whose live message is lost on the way.
            prefix, suffix = frame_parts(
                "brief.published", "briefs", {"id": "lost", "text": "lost"}
            )
            await admin.xadd(keys.log("briefs"), {"p": prefix, "s": suffix})
            gaps = hub.gaps
            await api.post("/api/briefs", json={"text": "next"}, headers=auth(live_server.token))
            first, second = await recv_json(ws), await recv_json(ws)
            assert (first["data"]["text"], second["data"]["text"]) == ("lost", "next")
            assert hub.gaps == gaps + 1
            await api.post("/api/briefs", json={"text": "after"}, headers=auth(live_server.token))
            assert (await recv_json(ws))["data"]["text"] == "after"
    finally:
        await admin.aclose()


async def test_events_published_while_the_process_is_busy_reach_readers_once_in_order(
    live_server: LiveServer, redis_server: RedisServer
) -> None:
    """Three briefs published while the server's event loop is blocked arrive together:
    the hub hands them out in one go (one write per reader), each once and in order."""
    hub: Hub = live_server.services.hub
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        gathered = hub.gathered
        publish_while_busy(redis_server.url, live_server.settings.redis_prefix, 3)
        frames = [await recv_json(ws) for _ in range(3)]
        assert [f["data"]["text"] for f in frames] == ["0", "1", "2"]
        assert hub.gathered >= gathered + 2  # handed out together, not one per turn
        with contextlib.suppress(TimeoutError):
            extra = await asyncio.wait_for(ws.recv(), 0.5)
            raise AssertionError(f"a frame arrived twice or unasked: {extra!r}")
