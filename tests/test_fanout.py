"""The fan-out's write path, end to end: with ``livefeed.frames`` and with plain ASGI send."""

from __future__ import annotations

import pytest
import websockets

from tests.conftest import LiveServer
from tests.helpers import auth, recv_json, subscribe, wait_for

# Every live-server test runs with the livefeed.frames fast path and with plain ASGI send.
pytestmark = pytest.mark.both_write_paths


async def test_every_reader_gets_each_event_once_and_it_is_counted_once_per_reader(
    live_server: LiveServer, api, frames_extension: bool
) -> None:
    readers = [await websockets.connect(live_server.ws_url) for _ in range(3)]
    try:
        for ws in readers:
            await subscribe(ws, "briefs")
        response = await api.post(
            "/api/briefs", json={"text": "Talks end"}, headers=auth(live_server.token)
        )
        assert response.status_code == 201
        brief_id = response.json()["id"]
        for ws in readers:
            assert (await recv_json(ws))["data"]["id"] == brief_id
        stats = live_server.services.stats
        await wait_for(lambda: stats.delivered["ws"] == 3, what="three deliveries counted")
        # The fast path encoded the frame once, in the server's cache, for all three readers;
        # plain ASGI send never touches that cache.
        cached = live_server.serving_state.frames.built
        assert (brief_id.encode() in cached) is frames_extension
    finally:
        for ws in readers:
            await ws.close()


async def test_a_burst_arrives_complete_and_in_order(live_server: LiveServer) -> None:
    log = live_server.services.log
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        for i in range(200):
            await log.append("briefs", "brief.published", {"id": str(i), "text": f"n{i}"})
        ids = [(await recv_json(ws))["data"]["id"] for _ in range(200)]
    assert ids == [str(i) for i in range(200)]
