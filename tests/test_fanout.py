"""The fan-out's write path: pre-encoded frames to the socket, queued when it pushes back."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.frames import Frame, Opcode

from livefeed.events import Event, EventId, pong_frame
from livefeed.fanout.subscription import Subscription
from livefeed.stats import Stats
from livefeed.transports.websocket import _drain, _frames_for, _sink, text_frame
from tests.conftest import LiveServer
from tests.helpers import recv_json, subscribe


class _Hub:
    """Joins at once: the subscription's merge logic is not what is tested here."""

    async def join(self, name: str, listener: object) -> None:
        return None

    def leave(self, name: str, listener: object) -> None:
        return None


class _Writer:
    """A socket that takes frames while ``writable``."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.writable = True

    @property
    def is_writable(self) -> bool:
        return self.writable

    def write(self, frame: bytes) -> None:
        assert self.writable, "written while the socket pushed back"
        self.frames.append(frame)

    def on_writable(self, callback: object) -> None:
        return None


def _event(seq: int) -> Event:
    frame = json.dumps({"type": "brief.published", "topic": "briefs", "id": f"e-1-{seq}"})
    return Event(topic="briefs", id=EventId("e", 1, seq), type="brief.published", frame=frame)


def _decoded(frames: list[bytes]) -> list[dict[str, object]]:
    out = []
    for frame in frames:
        assert frame[0] == 0x81  # final text frame, unmasked
        length = frame[1]
        start = 2 if length < 126 else 4 if length == 126 else 10
        out.append(json.loads(frame[start:]))
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_text_frame_is_what_websockets_would_send(size: int) -> None:
    payload = b"x" * size
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


async def test_frames_wait_while_the_socket_pushes_back_then_leave_in_order_once() -> None:
    stats = Stats()
    writer = _Writer()
    subscription = Subscription(_Hub(), None)  # type: ignore[arg-type]
    subscription.sink = _sink(writer, _frames_for(stats))
    await subscription.subscribe("briefs", None)
    subscription.deliver(_event(1))
    writer.writable = False
    subscription.deliver(_event(2))
    subscription.send(pong_frame())
    writer.writable = True
    # Frames are waiting: a new one must not overtake them, writable or not.
    subscription.deliver(_event(3))
    assert [f.get("id") for f in _decoded(writer.frames)] == [None, "e-1-1"]
    _drain(writer, subscription, stats)
    assert _decoded(writer.frames) == [
        {"type": "subscribed", "topic": "briefs", "recovered": True},
        {"type": "brief.published", "topic": "briefs", "id": "e-1-1"},
        {"type": "brief.published", "topic": "briefs", "id": "e-1-2"},
        {"type": "pong"},
        {"type": "brief.published", "topic": "briefs", "id": "e-1-3"},
    ]
    assert not subscription.has_pending
    subscription.deliver(_event(4))  # nothing waits any more: straight to the socket
    assert _decoded(writer.frames)[-1]["id"] == "e-1-4"
    await asyncio.sleep(0)  # the per-fan-out stats flush
    assert stats.delivered["ws"] == 4
    assert stats.latency.count == 4


async def test_the_fan_out_encodes_each_event_once_for_every_reader() -> None:
    stats = Stats()
    frames = _frames_for(stats)
    event = _event(7)
    assert frames.of(event) is frames.of(event)
    await asyncio.sleep(0)
    assert stats.delivered["ws"] == 2


async def test_livefeeds_server_offers_pre_encoded_frames_to_ws(
    live_server: LiveServer, api
) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        response = await api.post(
            "/api/briefs",
            json={"text": "Talks end"},
            headers={"Authorization": f"Bearer {live_server.token}"},
        )
        assert response.status_code == 201
        event = await recv_json(ws)
        assert event["data"]["id"] == response.json()["id"]
    # The frame went out through ``livefeed.frames``, encoded once (not through send_text).
    frames = _frames_for(live_server.services.stats)
    assert response.json()["id"].encode() in frames._frame
