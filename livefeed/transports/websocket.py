"""``/ws``: one reader's WebSocket around one Subscription, as a bare ASGI app.

The reader socket is what a process holds thousands of for hours, so it skips everything
an HTTP request goes through: the app hands ``/ws`` to ``ReaderSockets`` before any
middleware or routing (``livefeed.app``), which checks the address's cap, the origin and
the drain itself, and speaks ASGI messages directly. An idle reader then costs its
subscription and a couple of coroutine frames, not a frame per middleware.

The connection's own task reads the client's frames (subscribe, unsubscribe, ping).
Frames go out through the subscription. Where the server offers the ``livefeed.frames``
extension (``transports/extension.py``; livefeed's own server does), the hub's fan-out
writes each event's frame straight to the reader's socket and no task of the reader's
writes. Under any other ASGI server a writer task drains the subscription's bounded queue
with ASGI ``send``.

The connection ends with the close code that tells the client what to do: 1013 when it
read too slowly, 1008 after too many bad frames, 1001 when the server is going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from livefeed import errors, limits
from livefeed.errors import CloseCode, FrameError, LivefeedError
from livefeed.events import Event, error_frame, pong_frame, unsubscribed_frame
from livefeed.fanout.readers import EndReason
from livefeed.fanout.subscription import Subscription
from livefeed.services import Services
from livefeed.stats import WS, Stats
from livefeed.transports.extension import frames_for
from livefeed.transports.frames import PING, SUBSCRIBE, Frame, parse_frame
from livefeed.web.guard import SECURITY_HEADERS, LiveConnections, refuse_live
from livefeed.web.requests import is_allowed_origin

logger = logging.getLogger("livefeed.ws")

PATH = "/ws"

# What the client is told, by why its connection ended (nothing: it left, or is gone).
_CLOSE_CODES = {
    EndReason.TOO_SLOW: CloseCode.TRY_AGAIN_LATER,
    EndReason.GOING_AWAY: CloseCode.GOING_AWAY,
    EndReason.POLICY: CloseCode.POLICY_VIOLATION,
}
_DRAINING = json.dumps(errors.Unavailable("server is restarting, reconnect").to_json()).encode()


class _PolicyViolation(Exception):
    """The client broke the rules often enough that we stop talking to it."""


class ReaderSockets:
    """``/ws``: the ASGI app of reader WebSockets."""

    __slots__ = ("_live", "_services")

    def __init__(self, services: Services, live: LiveConnections) -> None:
        self._services = services
        self._live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = self._live.admit(scope)
        if address is None:
            await refuse_live(scope, send)
            return
        try:
            services = self._services
            settings = services.settings
            connection = HTTPConnection(scope)
            if not is_allowed_origin(connection, settings.allowed_origins):
                # Before accepting: the handshake is answered 403.
                await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})
                return
            if services.readers.going_away.is_set():
                await _refuse_while_draining(scope, send)
                return
            origin = connection.headers.get("origin", "").rstrip("/")
            if origin in settings.allowed_origins:
                services.stats.embeds["module"] += 1  # a live reader on another site's page
            del connection
            await _serve(scope, receive, send, services)
        finally:
            self._live.release(address)


async def _refuse_while_draining(scope: Scope, send: Send) -> None:
    """A handshake reaching a draining server: 503 before the upgrade, so a load balancer
    (nginx ``proxy_next_upstream http_503``) passes it to another server and keeps away
    from this one, instead of a reconnect landing here again and again until it stops."""
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", b"1"),
            *SECURITY_HEADERS,
        ]
        await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": _DRAINING})
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": CloseCode.GOING_AWAY})  # reconnect elsewhere


async def _serve(scope: Scope, receive: Receive, send: Send, services: Services) -> None:
    """Accept, then read and write until the reader leaves, falls behind or is sent away.

    The reader's frames are read in the connection's own task. The other endings (too
    slow, server going away, the writer failing) are callbacks that interrupt that read by
    cancelling it. With ``livefeed.frames`` the hub writes frames itself and there is no
    writer task at all: what a socket that pushed back left queued is written when it
    takes data again. So an idle reader costs no task of its own.
    """
    if (await receive())["type"] != "websocket.connect":
        return
    writer = frames_for(scope)
    await send({"type": "websocket.accept"})
    this = asyncio.current_task()
    if this is None:
        raise RuntimeError("a WebSocket is served in a task")
    readers, stats = services.readers, services.stats
    subscription = Subscription(services.hub, services.log)
    ending = _Ending(this)
    write: asyncio.Task[None] | None = None
    if writer is not None:
        writer.attach(subscription, stats)
    else:
        write = asyncio.create_task(_write(send, subscription, stats))
        write.add_done_callback(ending.write_ended)
    subscription.on_overflow = ending.too_slow
    readers.on_leave(ending.go_away)
    readers.opened(WS)
    try:
        reason = await _read_until_the_end(receive, subscription, stats, ending)
    finally:
        readers.forget(ending.go_away)
        if writer is not None:
            writer.detach()
        if write is not None:
            write.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await write
        subscription.close()
        readers.closed(WS)
    if reason is EndReason.TOO_SLOW:
        stats.slow_disconnects[WS] += 1
    code = _CLOSE_CODES.get(reason)
    logger.debug("reader left (%s, close code %s)", reason, code)
    if code is not None:
        # A reader who stopped reading may never take the close frame; do not wait on it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(send({"type": "websocket.close", "code": code}), 1.0)


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

    def too_slow(self) -> None:
        self.end(EndReason.TOO_SLOW)

    def write_ended(self, _: asyncio.Task[None]) -> None:
        self.end(EndReason.WRITE_FAILED)


async def _read_until_the_end(
    receive: Receive, subscription: Subscription, stats: Stats, ending: _Ending
) -> EndReason:
    try:
        try:
            await _read(receive, subscription, stats)
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


class _Window:
    """Timestamps of the last few occurrences of something, within a sliding window.

    A list, not a deque: nearly every reader subscribes once and keeps this for hours,
    and a deque's first block alone is ~600 bytes.
    """

    __slots__ = ("_times", "_window")

    def __init__(self, window: float) -> None:
        self._times: list[float] = []
        self._window = window

    def add(self, now: float) -> int:
        """Count one more at ``now``; how many fall within the window."""
        times = self._times
        times.append(now)
        start = now - self._window
        if times[0] < start:
            del times[: next(i for i, t in enumerate(times) if t >= start)]
        return len(times)


async def _read(receive: Receive, subscription: Subscription, stats: Stats) -> None:
    bad_frames: _Window | None = None  # most readers never send a bad one
    # Each subscribe may replay a topic's history: a client may not ask for that in a loop.
    subscribes: _Window | None = None
    while True:
        # Nothing of the last frame is held while waiting for the next: an idle reader's
        # coroutine keeps no message, text or parsed frame alive.
        text = frame = None
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        del message
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
                bad_frames = _Window(limits.WS_BAD_FRAMES_WINDOW)
            if bad_frames.add(now) >= limits.WS_BAD_FRAMES_MAX:
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


async def _write(send: Send, subscription: Subscription, stats: Stats) -> None:
    try:
        while True:
            item = await subscription.next()
            if isinstance(item, Event):
                await send({"type": "websocket.send", "text": item.frame})
                stats.delivered_event(WS, item.id.ms)
            else:
                await send({"type": "websocket.send", "text": item})
    except (RuntimeError, OSError):
        return  # the client is gone; the reader sees the disconnect
