"""/ws as a browser would use it: subscribe, resume, errors, limits, slow readers."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from livefeed import limits
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth, expect_silence, recv_json, subscribe, wait_for

# Every live-server test runs with the livefeed.frames fast path and with plain ASGI send.
pytestmark = pytest.mark.both_write_paths


async def publish(api, token: str, text: str, **extra) -> dict:
    response = await api.post("/api/briefs", json={"text": text, **extra}, headers=auth(token))
    assert response.status_code == 201, response.text
    return response.json()


async def last_seen_id(live_server: LiveServer, api) -> str:
    """The event id of the one brief a reader saw live before it went away."""
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        await publish(api, live_server.token, "seen")
        return (await recv_json(ws))["id"]


async def test_every_subscriber_receives_a_published_brief_once(
    live_server: LiveServer, api
) -> None:
    clients = [await websockets.connect(live_server.ws_url) for _ in range(3)]
    try:
        for ws in clients:
            frames = await subscribe(ws, "briefs")
            assert frames == [{"type": "subscribed", "topic": "briefs", "recovered": True}]
        brief = await publish(api, live_server.token, "Wildfires force 26,000 to evacuate")
        for ws in clients:
            event = await recv_json(ws)
            assert event["type"] == "brief.published"
            assert event["topic"] == "briefs"
            assert event["data"] == brief
            await expect_silence(ws)
    finally:
        for ws in clients:
            await ws.close()


async def test_comment_subscriber_gets_only_its_article(live_server: LiveServer, api) -> None:
    for slug in ("a", "b"):
        body = {"title": slug, "summary": "s", "body": ["p"]}
        assert (
            await api.put(f"/api/articles/{slug}", json=body, headers=auth(live_server.token))
        ).status_code == 201
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "comments:a")
        await api.post("/api/articles/b/comments", json={"author": "Bo", "text": "on b"})
        await api.post("/api/articles/a/comments", json={"author": "Al", "text": "on a"})
        event = await recv_json(ws)
        assert event["type"] == "comment.created"
        assert event["data"]["text"] == "on a"
        await expect_silence(ws)


async def test_resume_with_since_delivers_exactly_the_missed_events_in_order(
    live_server: LiveServer, api
) -> None:
    last_seen = await last_seen_id(live_server, api)
    missed = [await publish(api, live_server.token, f"missed {i}") for i in range(5)]
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=last_seen)
        assert [f["data"]["text"] for f in frames[:-1]] == [b["text"] for b in missed]
        assert frames[-1] == {"type": "subscribed", "topic": "briefs", "recovered": True}
        ids = [f["id"] for f in frames[:-1]]
        assert len(set(ids)) == len(ids)
        await publish(api, live_server.token, "live again")
        assert (await recv_json(ws))["data"]["text"] == "live again"
        await expect_silence(ws)


async def test_resume_with_the_latest_id_replays_nothing(live_server: LiveServer, api) -> None:
    body = (await api.get("/api/briefs")).json()
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=body["last_event_id"])
        assert frames == [{"type": "subscribed", "topic": "briefs", "recovered": True}]


async def test_list_then_subscribe_misses_nothing_published_in_between(
    live_server: LiveServer, api
) -> None:
    position = (await api.get("/api/briefs")).json()["last_event_id"]
    brief = await publish(api, live_server.token, "between list and subscribe")
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=position)
    assert [f["data"]["id"] for f in frames[:-1]] == [brief["id"]]
    assert frames[-1]["recovered"] is True


@pytest.mark.parametrize(
    "since", ["garbage", "", "abc-1-0", "comments:x", "zzzzzzzz-99999999999999-0"]
)
async def test_resume_with_an_id_never_issued_is_not_recovered(
    live_server: LiveServer, since: str
) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=since)
        assert frames == [{"type": "subscribed", "topic": "briefs", "recovered": False}]


async def test_resume_with_another_topics_id_is_not_recovered(live_server: LiveServer, api) -> None:
    body = {"title": "t", "summary": "s", "body": ["p"]}
    await api.put("/api/articles/x", json=body, headers=auth(live_server.token))
    article_position = (await api.get("/api/articles/x/comments")).json()["last_event_id"]
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=article_position)
        assert frames[-1]["recovered"] is False


@pytest.fixture
def settings(settings):
    return settings.with_(history_size=5)


async def test_resume_with_id_older_than_history_reports_not_recovered(
    live_server: LiveServer, api
) -> None:
    old = await last_seen_id(live_server, api)
    # History keeps 5: a reader who missed exactly 5 still recovers ...
    for i in range(5):
        await publish(api, live_server.token, f"n{i}")
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=old)
        assert [f["data"]["text"] for f in frames[:-1]] == [f"n{i}" for i in range(5)]
        assert frames[-1]["recovered"] is True
    # ... one who missed 6 does not, and is told so.
    await publish(api, live_server.token, "n5")
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=old)
        assert frames == [{"type": "subscribed", "topic": "briefs", "recovered": False}]


async def test_updates_and_retractions_arrive(live_server: LiveServer, api) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        brief = await publish(api, live_server.token, "Quary collapse: 17 dead")
        await recv_json(ws)
        patched = await api.patch(
            f"/api/briefs/{brief['id']}",
            json={"text": "Quarry collapse: 17 dead"},
            headers=auth(live_server.token),
        )
        assert patched.status_code == 200
        updated = await recv_json(ws)
        assert updated["type"] == "brief.updated"
        assert updated["data"]["text"] == "Quarry collapse: 17 dead"
        assert updated["data"]["published_at"] == brief["published_at"]
        deleted = await api.delete(f"/api/briefs/{brief['id']}", headers=auth(live_server.token))
        assert deleted.status_code == 204
        event = await recv_json(ws)
        assert event["type"] == "brief.deleted"
        assert event["data"]["id"] == brief["id"]


async def test_ping_and_unsubscribe(live_server: LiveServer, api) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong"}
        await subscribe(ws, "briefs")
        await ws.send(json.dumps({"type": "unsubscribe", "topic": "briefs"}))
        assert await recv_json(ws) == {"type": "unsubscribed", "topic": "briefs"}
        await publish(api, live_server.token, "nobody on this socket wants this")
        await expect_silence(ws)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"topic": "briefs"}', "bad_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "subscribe", "topic": "weather"}', "unknown_topic"),
        ('{"type": "subscribe", "topic": "comments:Bad Slug"}', "unknown_topic"),
        ('{"type": "subscribe"}', "bad_frame"),
        ('{"type": "subscribe", "topic": "briefs", "since": 5}', "bad_frame"),
        ('{"type": "subscribe", "topic": "briefs", "extra": 1}', "bad_frame"),
        (json.dumps({"type": "ping", "pad": "x" * 5000}), "frame_too_large"),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_connection_stays(
    live_server: LiveServer, frame: str, code: str
) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await ws.send(frame)
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["message"]
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong"}


async def test_binary_frames_are_refused_politely(live_server: LiveServer) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await ws.send(b"\x00\x01")
        assert (await recv_json(ws))["code"] == "bad_frame"


async def test_too_many_subscriptions(live_server: LiveServer) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        for i in range(limits.SUBSCRIPTIONS_MAX):
            await subscribe(ws, f"comments:article-{i}")
        await ws.send(json.dumps({"type": "subscribe", "topic": "briefs"}))
        assert (await recv_json(ws))["code"] == "too_many_subscriptions"


async def test_twenty_bad_frames_close_with_policy_violation(live_server: LiveServer) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        for _ in range(limits.WS_BAD_FRAMES_MAX):
            await ws.send("nope")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_huge_frame_closes_with_1009(live_server: LiveServer) -> None:
    async with websockets.connect(live_server.ws_url, max_size=None) as ws:
        await ws.send("x" * (limits.WS_MESSAGE_MAX + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


async def test_no_compression_is_negotiated(live_server: LiveServer) -> None:
    async with websockets.connect(live_server.ws_url, compression="deflate") as ws:
        assert "permessage-deflate" not in (
            ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        )


async def test_a_reader_who_stops_reading_is_closed_with_1013_and_others_are_fine(
    live_server: LiveServer, api
) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", live_server.port))
    slow = await websockets.connect(live_server.ws_url, sock=sock, max_queue=1)
    healthy = await websockets.connect(live_server.ws_url)
    try:
        await subscribe(slow, "briefs")
        await subscribe(healthy, "briefs")
        # The slow reader never reads again. Publish well past what socket buffers (a few
        # MiB) and its queue can hold: 8 MiB in events of 8 KiB.
        log = live_server.services.log
        text = "x" * 8192
        count = limits.SEND_QUEUE_BYTES * 8 // len(text)

        async def read_all() -> list[str]:
            return [(await recv_json(healthy))["data"]["id"] for _ in range(count)]

        reading = asyncio.create_task(read_all())
        for i in range(count):
            await log.append("briefs", "brief.published", {"id": str(i), "text": text})
        assert await reading == [str(i) for i in range(count)]
        readers = live_server.services.readers
        await wait_for(lambda: readers.counts()["ws"] == 1, what="the slow reader to be dropped")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), TIMEOUT)
        # The close frame queues behind megabytes the reader never read: it gets 1013 if it
        # reads again within the server's close timeout, else the TCP connection just ends.
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1013
    finally:
        await slow.close()
        await healthy.close()


async def test_a_foreign_origin_is_refused_before_the_upgrade(live_server: LiveServer) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await websockets.connect(live_server.ws_url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    own = f"http://127.0.0.1:{live_server.port}"
    async with websockets.connect(live_server.ws_url, origin=own) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong"}


@pytest.fixture
def draining_settings(settings):
    return settings.with_(drain_seconds=1.0)


async def test_shutdown_turns_readyz_503_then_sends_readers_away_with_1001(
    draining_settings, frames_extension: bool
) -> None:
    server = LiveServer(draining_settings, frames=frames_extension)
    await server.start()
    clients = [await websockets.connect(server.ws_url) for _ in range(5)]
    try:
        for ws in clients:
            await subscribe(ws, "briefs")
        stopping = asyncio.create_task(server.stop())
        async with server.client() as api:
            await wait_for(
                lambda: server.services.readers.going_away.is_set(), what="the drain to start"
            )
            ready = await api.get("/readyz")
            assert ready.status_code == 503
            assert "shutdown" in ready.json()["failing"]
        codes = []
        for ws in clients:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        assert codes == [1001] * len(clients)
        await asyncio.wait_for(stopping, TIMEOUT)
    finally:
        for ws in clients:
            await ws.close()
        await server.stop()
