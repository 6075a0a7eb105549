"""livefeed.serving's frame protocol on a stand-in transport: open, paused and closing sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.frames import Frame, Opcode

from livefeed.events import Event, EventId, pong_frame
from livefeed.fanout.readers import EndReason, Readers
from livefeed.fanout.subscription import Subscription
from livefeed.serving.frames import FrameCache, text_frame
from livefeed.serving.protocols import FrameProtocol, ServingState
from livefeed.serving.server import server_config
from livefeed.stats import Stats
from livefeed.transports.extension import FrameWriter, frames_for
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, wait_for

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class _Transport:
    """The part of an asyncio transport the protocol uses; remembers what was written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.writes = 0  # calls: each is a system call on a real socket
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written to a closing transport"
        self.written += data
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


class _App:
    """Accepts when told to, then holds the connection until told to close it."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}
        self.may_accept = asyncio.Event()
        self.accepted = asyncio.Event()
        self.may_close = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        await receive()  # websocket.connect
        await self.may_accept.wait()
        await send({"type": "websocket.accept"})
        self.accepted.set()
        await self.may_close.wait()
        await send({"type": "websocket.close", "code": 1001})


class _Hub:
    """Joins at once: the subscription's merge logic is not what is tested here."""

    def join_now(self, name: str, listener: object) -> bool:
        return False  # the slow path: join below

    async def join(self, name: str, listener: object) -> None:
        return None

    def leave(self, name: str, listener: object) -> None:
        return None


class _Connection:
    """One FrameProtocol with its transport and app, past the handshake."""

    def __init__(self, state: ServingState, handshake: bytes = HANDSHAKE) -> None:
        self.app = _App()
        config = server_config(self.app, "127.0.0.1", 0)  # type: ignore[arg-type]
        config.load()
        self.protocol = FrameProtocol(config, state, {})
        self.transport = _Transport()
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]
        before = set(state.tasks)
        self.protocol.data_received(handshake)
        self.tasks = state.tasks - before  # the app's, started by the handshake

    @property
    def writer(self) -> FrameWriter:
        writer = frames_for(self.app.scope)
        assert writer is not None
        return writer

    async def accept(self) -> None:
        self.app.may_accept.set()
        await asyncio.wait_for(self.app.accepted.wait(), 5)

    def frames(self) -> list[Any]:
        """What went out after the handshake's response, decoded."""
        data = bytes(self.transport.written)
        data = data[data.index(b"\r\n\r\n") + 4 :]
        out = []
        while data:
            length, start = data[1], 2
            if length == 126:
                length, start = int.from_bytes(data[2:4], "big"), 4
            payload = data[start : start + length]
            out.append(json.loads(payload) if data[0] == 0x81 else ("close", data[0]))
            data = data[start + length :]
        return out

    async def end(self) -> None:
        self.app.may_accept.set()
        self.app.may_close.set()
        await asyncio.gather(*self.tasks)
        self.protocol.connection_lost(None)


@pytest.fixture
async def connection() -> AsyncIterator[_Connection]:
    conn = _Connection(ServingState())
    yield conn
    await conn.end()


def _event(seq: int) -> Event:
    frame = json.dumps({"type": "brief.published", "topic": "briefs", "id": f"e-1-{seq}"})
    return Event(topic="briefs", id=EventId("e", 1, seq), type="brief.published", frame=frame)


async def _subscribed(writer: FrameWriter, stats: Stats) -> Subscription:
    subscription = Subscription(_Hub(), None)  # type: ignore[arg-type]
    writer.attach(subscription, stats)
    await subscription.subscribe("briefs", None)
    return subscription


def _ids(frames: list[Any]) -> list[Any]:
    return [f.get("id", f["type"]) for f in frames]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_text_frame_is_what_websockets_would_send(size: int) -> None:
    payload = b"x" * size
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


async def test_the_fan_out_encodes_each_event_once_and_counts_it_once() -> None:
    stats = Stats()
    cache = FrameCache()
    event = _event(7)
    assert cache.of(event, stats) is cache.of(event, stats)
    await asyncio.sleep(0)  # the per-fan-out stats flush
    assert stats.delivered["ws"] == 2
    assert stats.latency.count == 2


def test_a_server_without_the_extension_offers_no_writer() -> None:
    assert frames_for({"type": "websocket", "extensions": {"websocket.http.response": {}}}) is None
    assert frames_for({"type": "websocket"}) is None
    assert frames_for({"type": "websocket", "extensions": {"livefeed.frames": object()}}) is None


async def test_a_refused_handshake_offers_no_writer() -> None:
    conn = _Connection(ServingState(), HANDSHAKE.replace(b"Sec-WebSocket-Version: 13", b"X: y"))
    assert conn.protocol.socket_writer is None
    assert conn.transport.written.startswith(b"HTTP/1.1 4")
    assert not conn.tasks  # the app never ran


async def test_nothing_is_written_before_the_app_accepts(connection: _Connection) -> None:
    await wait_for(lambda: bool(connection.app.scope), what="the app to start")
    subscription = await _subscribed(connection.writer, Stats())
    assert connection.transport.written == b""  # not even the handshake's answer yet
    assert subscription.has_pending
    await connection.accept()
    assert connection.frames() == []  # what waited goes out when the socket is next writable


async def test_an_open_socket_takes_each_frame_at_once(connection: _Connection) -> None:
    await connection.accept()
    stats = Stats()
    subscription = await _subscribed(connection.writer, stats)
    subscription.deliver(_event(1))
    subscription.send(pong_frame())
    assert _ids(connection.frames()) == ["subscribed", "e-1-1", "pong"]
    assert not subscription.has_pending
    await asyncio.sleep(0)
    assert stats.delivered["ws"] == 1


async def test_a_paused_socket_queues_frames_and_they_leave_in_order_once_when_it_resumes(
    connection: _Connection,
) -> None:
    await connection.accept()
    stats = Stats()
    subscription = await _subscribed(connection.writer, stats)
    subscription.deliver(_event(1))
    connection.protocol.pause_writing()
    subscription.deliver(_event(2))
    subscription.send(pong_frame())
    assert _ids(connection.frames()) == ["subscribed", "e-1-1"]
    connection.protocol.resume_writing()
    # Frames are waiting: a new one must not overtake them, writable or not.
    subscription.deliver(_event(3))
    assert _ids(connection.frames()) == ["subscribed", "e-1-1"]
    await asyncio.sleep(0)  # the waiting frames are written soon, on the loop
    assert _ids(connection.frames()) == ["subscribed", "e-1-1", "e-1-2", "pong", "e-1-3"]
    assert not subscription.has_pending
    subscription.deliver(_event(4))  # nothing waits any more: straight to the socket
    assert _ids(connection.frames())[-1] == "e-1-4"
    await asyncio.sleep(0)
    assert stats.delivered["ws"] == 4
    assert stats.latency.count == 4


async def test_a_closing_socket_takes_no_frame(connection: _Connection) -> None:
    await connection.accept()
    subscription = await _subscribed(connection.writer, Stats())
    connection.transport.closing = True  # the peer went away, or the server closed it
    subscription.deliver(_event(1))
    assert subscription.has_pending
    connection.protocol.resume_writing()
    await asyncio.sleep(0)
    assert subscription.has_pending


async def test_no_frame_follows_the_apps_close(connection: _Connection) -> None:
    await connection.accept()
    subscription = await _subscribed(connection.writer, Stats())
    connection.app.may_close.set()
    await wait_for(lambda: connection.protocol.close_sent, what="the close frame")
    subscription.deliver(_event(1))
    assert connection.frames()[-1][0] == "close"


async def test_a_detached_writer_writes_nothing_more(connection: _Connection) -> None:
    await connection.accept()
    subscription = await _subscribed(connection.writer, Stats())
    connection.protocol.pause_writing()
    subscription.deliver(_event(1))
    connection.writer.detach()
    connection.protocol.resume_writing()
    await asyncio.sleep(0)
    assert _ids(connection.frames()) == ["subscribed"]
    assert subscription.sink is None


async def test_a_servers_connections_share_one_encoding_of_each_event() -> None:
    state = ServingState()
    first, second = _Connection(state), _Connection(state)
    try:
        stats = Stats()
        subscriptions = []
        for conn in (first, second):
            await conn.accept()
            subscriptions.append(await _subscribed(conn.writer, stats))
        event = _event(1)
        for subscription in subscriptions:
            subscription.deliver(event)
        assert first.frames() == second.frames()
        assert state.frames._count == 2  # one frame, counted for both readers
    finally:
        await first.end()
        await second.end()


async def test_a_draining_server_sends_each_reader_away_once() -> None:
    readers = Readers(drain_window=0.05)
    left: list[str] = []
    stays, goes = (lambda: left.append("stays")), (lambda: left.append("goes"))
    readers.on_leave(stays)
    readers.on_leave(goes)
    readers.forget(stays)  # that reader ended by itself first
    await readers.drain()
    late = asyncio.create_task(readers.my_turn_to_leave())  # joined while draining
    await asyncio.wait_for(late, 1)
    await wait_for(lambda: left == ["goes"], what="the reader to be sent away")
    assert left == ["goes"]
    assert EndReason.GOING_AWAY == "going_away"


async def test_events_gathered_by_a_busy_hub_leave_in_one_write_in_order(
    connection: _Connection,
) -> None:
    await connection.accept()
    stats = Stats()
    subscription = await _subscribed(connection.writer, stats)
    writes = connection.transport.writes
    subscription.deliver_all([_event(1), _event(2), _event(3)])
    assert connection.transport.writes == writes + 1
    assert _ids(connection.frames()) == ["subscribed", "e-1-1", "e-1-2", "e-1-3"]
    await asyncio.sleep(0)  # the per-fan-out stats flush
    assert stats.delivered["ws"] == 3
    assert stats.latency.count == 3


async def test_gathered_events_queue_one_by_one_behind_frames_that_wait(
    connection: _Connection,
) -> None:
    await connection.accept()
    subscription = await _subscribed(connection.writer, Stats())
    connection.protocol.pause_writing()  # the socket pushes back
    subscription.deliver(_event(1))
    subscription.deliver_all([_event(2), _event(3)])
    assert subscription.has_pending
    connection.protocol.resume_writing()
    await wait_for(lambda: not subscription.has_pending, what="the queue to drain")
    assert _ids(connection.frames()) == ["subscribed", "e-1-1", "e-1-2", "e-1-3"]


_KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (f"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{_KEY}", 101),
        (f"POST /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{_KEY}", 405),
        ("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", 400),
        (
            f"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{_KEY}"
            "Content-Length: 5\r\n",
            400,
        ),
        (
            f"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{_KEY}"
            + "".join(f"X-Filler-{n}: {n}\r\n" for n in range(130)),
            431,
        ),
    ],
    ids=["valid", "post", "no-key", "body", "too-many-headers"],
)
async def test_a_handshake_is_judged_as_websockets_would_judge_it(
    live_server: LiveServer, request_head: str, status: int
) -> None:
    """livefeed's server hands websockets the request httptools parsed instead of letting it
    parse the request again: what websockets would refuse is still refused, as websockets
    17 refuses it (older releases never answer some of these), and the socket is closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    try:
        writer.write(f"{request_head}Host: 127.0.0.1\r\n\r\n".encode())
        status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert status_line.split(b" ")[1] == str(status).encode(), status_line
        if status != 101:
            await asyncio.wait_for(reader.read(), TIMEOUT)  # then the server closes
    finally:
        writer.close()
