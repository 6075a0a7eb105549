"""``/ws``: one reader's WebSocket around one Subscription.

The connection's own task reads the client's frames (subscribe, unsubscribe, ping).
Frames go out through the subscription. Where the server offers the ``livefeed.frames``
extension (``transports/extension.py``; livefeed's own server does), the hub's fan-out
writes each event's frame straight to the reader's socket and no task of the reader's
writes. Under any other ASGI server a writer task drains the subscription's bounded queue
with ``send_text``.

The connection ends with the close code that tells the client what to do: 1013 when it
read too slowly, 1008 after too many bad frames, 1001 when the server is going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from livefeed import errors, limits
from livefeed.errors import CloseCode, FrameError, LivefeedError
from livefeed.events import Event, error_frame, pong_frame, unsubscribed_frame
from livefeed.fanout.hub import Hub
from livefeed.fanout.readers import EndReason, Readers
from livefeed.fanout.subscription import Subscription
from livefeed.services import services_of
from livefeed.stats import WS, Stats
from livefeed.storage.eventlog import EventLog
from livefeed.transports.extension import frames_for
from livefeed.transports.frames import PING, SUBSCRIBE, Frame, parse_frame
from livefeed.web.requests import is_allowed_origin

logger = logging.getLogger("livefeed.ws")

# What the client is told, by why its connection ended (nothing: it left, or is gone).
_CLOSE_CODES = {
    EndReason.TOO_SLOW: CloseCode.TRY_AGAIN_LATER,
    EndReason.GOING_AWAY: CloseCode.GOING_AWAY,
    EndReason.POLICY: CloseCode.POLICY_VIOLATION,
}


class _PolicyViolation(Exception):
    """The client broke the rules often enough that we stop talking to it."""


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
        code = _CLOSE_CODES.get(reason)
        if reason is EndReason.TOO_SLOW:
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
) -> EndReason:
    """Read and write until the reader leaves, falls behind or is sent away; the reason why.

    The reader's frames are read in the connection's own task. The other endings (too
    slow, server going away, the writer failing) are callbacks that interrupt that read by
    cancelling it. With ``livefeed.frames`` the hub writes frames itself and there is no
    writer task at all: what a socket that pushed back left queued is written when it
    takes data again. So an idle reader costs no task of its own.
    """
    this = asyncio.current_task()
    if this is None:
        raise RuntimeError("a WebSocket is served in a task")
    ending = _Ending(this)
    writer = frames_for(websocket.scope)
    write: asyncio.Task[None] | None = None
    if writer is not None:
        writer.attach(subscription, stats)
    else:
        write = asyncio.create_task(_write(websocket, subscription, stats))
        write.add_done_callback(lambda _: ending.end(EndReason.WRITE_FAILED))
    subscription.on_overflow = lambda: ending.end(EndReason.TOO_SLOW)
    readers.on_leave(ending.go_away)
    try:
        return await _read_until_the_end(websocket, subscription, stats, ending)
    finally:
        readers.forget(ending.go_away)
        if writer is not None:
            writer.detach()
        if write is not None:
            write.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await write
        subscription.close()


class _Ending:
    """Why the connection ends: the first reason given wins; a callback's cancels the read."""

    __slots__ = ("reason", "task")

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task
        self.reason: EndReason | None = None

    def end(self, reason: EndReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.task.cancel()

    def go_away(self) -> None:
        self.end(EndReason.GOING_AWAY)


async def _read_until_the_end(
    websocket: WebSocket, subscription: Subscription, stats: Stats, ending: _Ending
) -> EndReason:
    try:
        try:
            await _read(websocket, subscription, stats)
            reason = EndReason.LEFT
        except _PolicyViolation:
            reason = EndReason.POLICY
        if ending.reason is None:
            ending.reason = reason
        else:
            # A callback ended the connection while the read was ending by itself: take
            # the cancellation it requested now rather than at some later await.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            ending.task.uncancel()
    except asyncio.CancelledError:
        if ending.reason is None:
            raise  # not ours: the server is stopping this task
        ending.task.uncancel()
    finally:
        if ending.reason is None:
            ending.reason = EndReason.STOPPED  # from here on, callbacks change nothing
    return ending.reason


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
