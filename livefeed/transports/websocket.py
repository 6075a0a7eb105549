"""``/ws``: one reader's WebSocket around one Subscription.

The connection's own task reads the client's frames (subscribe, unsubscribe, ping).
Frames go out through the subscription. Under livefeed's own server
(``livefeed.serving.protocols.FrameProtocol``) the connection offers the ``livefeed.frames``
extension: each event's frame is encoded once for every reader of the process and the
hub's fan-out writes it straight to each reader's socket (the subscription's ``sink``);
what a socket that pushed back left queued is written when it takes data again. Under any
other ASGI server a writer task drains the subscription's bounded queue with ``send_text``.

The connection ends with the close code that tells the client what to do: 1013 when it
read too slowly, 1008 after too many bad frames, 1001 when the server is going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from livefeed import errors, limits
from livefeed.errors import CloseCode, FrameError, LivefeedError
from livefeed.events import Event, error_frame, pong_frame, unsubscribed_frame
from livefeed.fanout.hub import Hub
from livefeed.fanout.readers import WS, Readers
from livefeed.fanout.subscription import Outgoing, Sink, Subscription
from livefeed.services import services_of
from livefeed.stats import Stats
from livefeed.storage.eventlog import EventLog
from livefeed.transports.frames import PING, SUBSCRIBE, Frame, parse_frame
from livefeed.web.requests import is_allowed_origin

logger = logging.getLogger("livefeed.ws")


FRAMES_EXTENSION = "livefeed.frames"


class _PolicyViolation(Exception):
    """The client broke the rules often enough that we stop talking to it."""


class FrameWriter(Protocol):
    """What the ``livefeed.frames`` extension offers (livefeed.serving.protocols.FrameWriter)."""

    @property
    def is_writable(self) -> bool: ...

    def write(self, frame: bytes) -> None: ...

    def on_writable(self, callback: Callable[[], None]) -> None: ...


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked, final text frame (what a server sends) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126, n >> 8, n & 0xFF)) + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class _Frames:
    """The frame of the event being fanned out, encoded once; its deliveries counted once.

    The hub hands one event to every reader in a row, so one remembered event is enough.
    Its deliveries are added to the stats (count and latency) once the fan-out is over,
    instead of once per reader.
    """

    __slots__ = ("_count", "_event", "_frame", "_stats")

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._event: Event | None = None
        self._frame = b""
        self._count = 0

    def of(self, event: Event) -> bytes:
        """The frame of ``event``, counted as delivered once more."""
        if event is not self._event:
            self.flush()
            self._event = event
            self._frame = text_frame(event.frame.encode())
            asyncio.get_running_loop().call_soon(self.flush)
        self._count += 1
        return self._frame

    def flush(self) -> None:
        if self._count and self._event is not None:
            self._stats.delivered_event(WS, self._event.id.ms, self._count)
            self._count = 0


_frames_of: weakref.WeakKeyDictionary[Stats, _Frames] = weakref.WeakKeyDictionary()


def _frames_for(stats: Stats) -> _Frames:
    frames = _frames_of.get(stats)
    if frames is None:
        frames = _frames_of[stats] = _Frames(stats)
    return frames


def _frame_writer(websocket: WebSocket) -> FrameWriter | None:
    writer = (websocket.scope.get("extensions") or {}).get(FRAMES_EXTENSION)
    return writer if hasattr(writer, "on_writable") else None


def _sink(writer: FrameWriter, frames: _Frames) -> Sink:
    def sink(item: Outgoing) -> bool:
        if not writer.is_writable:
            return False
        writer.write(frames.of(item) if isinstance(item, Event) else text_frame(item.encode()))
        return True

    return sink


async def websocket_endpoint(websocket: WebSocket) -> None:
    state = services_of(websocket)
    hub: Hub = state.hub
    log: EventLog = state.log
    readers: Readers = state.readers
    if not is_allowed_origin(websocket, state.settings.allowed_origins):
        await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    stats: Stats = state.stats
    if readers.going_away.is_set():
        await _refuse_while_draining(websocket)
        return
    await websocket.accept()
    subscription = Subscription(hub, log)
    with readers.connected(WS):
        reason = await _serve(websocket, subscription, stats, readers)
        code = _close_code(reason)
        if code == CloseCode.TRY_AGAIN_LATER:
            stats.slow_disconnects[WS] += 1
        logger.debug("reader left (%s, close code %s)", reason, code)
        await _close(websocket, code)


async def _refuse_while_draining(websocket: WebSocket) -> None:
    """A handshake reaching a draining server: 503 before the upgrade, so a load balancer
    (nginx ``proxy_next_upstream http_503``) passes it to another server and keeps away
    from this one, instead of a reconnect landing here again and again until it stops."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        error = errors.Unavailable("server is restarting, reconnect")
        response = JSONResponse(error.to_json(), status_code=503, headers={"Retry-After": "1"})
        await websocket.send_denial_response(response)
        return
    await websocket.accept()
    await websocket.close(CloseCode.GOING_AWAY)  # reconnect now, to another server


async def _serve(
    websocket: WebSocket, subscription: Subscription, stats: Stats, readers: Readers
) -> str:
    """Read and write until the reader leaves, falls behind or is sent away; the reason why.

    The reader's frames are read in the connection's own task. The other endings (too
    slow, server going away, the writer failing) are callbacks that interrupt that read by
    cancelling it. With ``livefeed.frames`` the hub writes frames itself and there is no
    writer task at all: what a socket that pushed back left queued is written when it
    takes data again. So an idle reader costs no task of its own.
    """
    this = asyncio.current_task()
    assert this is not None
    ending: list[str] = []

    def end(reason: str) -> None:
        if not ending:
            ending.append(reason)
            this.cancel()

    writer = _frame_writer(websocket)
    write: asyncio.Task[None] | None = None
    if writer is not None:
        subscription.sink = _sink(writer, _frames_for(stats))
        writer.on_writable(lambda: _drain(writer, subscription, stats))
    else:
        write = asyncio.create_task(_write(websocket, subscription, stats))
        write.add_done_callback(lambda _: end("write"))
    subscription.on_overflow = lambda: end("slow")
    departures = _departures_of(readers)
    departures.add(end)
    try:
        try:
            await _read(websocket, subscription, stats)
            reason = "read"
        except _PolicyViolation:
            reason = "policy"
        if not ending:
            ending.append(reason)
        else:
            # A callback ended the connection while the read was ending by itself: take
            # the cancellation it requested now rather than at some later await.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            this.uncancel()
    except asyncio.CancelledError:
        if not ending:
            raise  # not ours: the server is stopping this task
        this.uncancel()
    finally:
        if not ending:
            ending.append("")  # from here on, callbacks change nothing
        departures.discard(end)
        subscription.sink = None
        if write is not None:
            write.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await write
        subscription.close()
    return ending[0]


class _Departures:
    """Sends every reader away (1001) at its own moment once the server is going away.

    ``Readers.my_turn_to_leave`` as one task per process instead of one per reader: each
    reader leaves at a random moment spread over the drain window.
    """

    def __init__(self, readers: Readers) -> None:
        self._readers = readers
        self._waiting: set[Callable[[str], None]] = set()
        self._watch: asyncio.Task[None] | None = None

    def add(self, end: Callable[[str], None]) -> None:
        if self._readers.going_away.is_set():
            self._schedule(end)
            return
        self._waiting.add(end)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watch_going_away())

    def discard(self, end: Callable[[str], None]) -> None:
        self._waiting.discard(end)

    async def _watch_going_away(self) -> None:
        await self._readers.going_away.wait()
        waiting, self._waiting = self._waiting, set()
        for end in waiting:
            self._schedule(end)

    def _schedule(self, end: Callable[[str], None]) -> None:
        delay = random.uniform(0, self._readers.drain_window)
        asyncio.get_running_loop().call_later(delay, end, "away")


_departures: weakref.WeakKeyDictionary[Readers, _Departures] = weakref.WeakKeyDictionary()


def _departures_of(readers: Readers) -> _Departures:
    departures = _departures.get(readers)
    if departures is None:
        departures = _departures[readers] = _Departures(readers)
    return departures


def _drain(writer: FrameWriter, subscription: Subscription, stats: Stats) -> None:
    """Write what waited while the socket pushed back, until it pushes back again."""
    while subscription.has_pending and writer.is_writable:
        item = subscription.pop()
        if isinstance(item, Event):
            writer.write(text_frame(item.frame.encode()))
            stats.delivered_event(WS, item.id.ms)
        else:
            writer.write(text_frame(item.encode()))


def _close_code(reason: str) -> CloseCode | None:
    if reason == "slow":
        return CloseCode.TRY_AGAIN_LATER
    if reason == "away":
        return CloseCode.GOING_AWAY
    if reason == "policy":
        return CloseCode.POLICY_VIOLATION
    return None  # the client left


async def _close(websocket: WebSocket, code: CloseCode | None) -> None:
    if code is None:
        return
    # A reader who stopped reading may never take the close frame; do not wait on it.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code), 1.0)


class _Window:
    """Timestamps of the last few occurrences of something, within a sliding window."""

    __slots__ = ("_times", "_window")

    def __init__(self, window: float) -> None:
        self._times: deque[float] = deque()
        self._window = window

    def add(self, now: float) -> int:
        """Count one more at ``now``; how many fall within the window."""
        times = self._times
        times.append(now)
        while times[0] < now - self._window:
            times.popleft()
        return len(times)


async def _read(websocket: WebSocket, subscription: Subscription, stats: Stats) -> None:
    bad_frames: deque[float] | None = None  # most readers never send a bad one
    # Each subscribe may replay a topic's history: a client may not ask for that in a loop.
    subscribes: _Window | None = None
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        try:
            if text is None:
                raise FrameError("send JSON in text frames", code=errors.BAD_FRAME)
            frame = parse_frame(text)
            if frame.type != PING:
                if subscribes is None:
                    subscribes = _Window(limits.SUBSCRIBES_WINDOW)
                if subscribes.add(time.monotonic()) > limits.SUBSCRIBES_MAX:
                    raise FrameError(
                        f"at most {limits.SUBSCRIBES_MAX} subscribe or unsubscribe frames"
                        f" in {limits.SUBSCRIBES_WINDOW:g} s",
                        code=errors.RATE_LIMITED,
                    )
            await _handle(frame, subscription, stats)
        except LivefeedError as exc:
            subscription.send(error_frame(exc.code, exc.message))
            if isinstance(exc, errors.Unavailable):
                continue  # our trouble, not the client's
            now = time.monotonic()
            if bad_frames is None:
                bad_frames = deque()
            bad_frames.append(now)
            while bad_frames[0] < now - limits.WS_BAD_FRAMES_WINDOW:
                bad_frames.popleft()
            if len(bad_frames) >= limits.WS_BAD_FRAMES_MAX:
                raise _PolicyViolation from None


async def _handle(frame: Frame, subscription: Subscription, stats: Stats) -> None:
    if frame.type == PING:
        subscription.send(pong_frame())
    elif frame.type == SUBSCRIBE:
        recovered = await subscription.subscribe(frame.topic, frame.since)
        if frame.since is not None:
            stats.resumes[recovered] += 1
    else:
        subscription.unsubscribe(frame.topic)
        subscription.send(unsubscribed_frame(frame.topic))


async def _write(websocket: WebSocket, subscription: Subscription, stats: Stats) -> None:
    try:
        while True:
            item = await subscription.next()
            if isinstance(item, Event):
                await websocket.send_text(item.frame)
                stats.delivered_event(WS, item.id.ms)
            else:
                await websocket.send_text(item)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client is gone; the reader sees the disconnect
