"""``/ws``: a reader task and a writer task around one Subscription.

The reader handles the client's frames (subscribe, unsubscribe, ping); the writer drains
the subscription's bounded queue to the socket. Whichever ends first ends the connection
with the close code that tells the client what to do: 1013 when it read too slowly, 1008
after too many bad frames, 1001 when the server is going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from livefeed import errors, limits
from livefeed.errors import CloseCode, FrameError, LivefeedError
from livefeed.events import Event, error_frame, pong_frame, unsubscribed_frame
from livefeed.http import is_allowed_origin
from livefeed.hub import Hub
from livefeed.readers import WS, Readers
from livefeed.stats import Stats
from livefeed.storage.eventlog import EventLog
from livefeed.subscription import Subscription
from livefeed.transports.frames import PING, SUBSCRIBE, Frame, parse_frame

logger = logging.getLogger("livefeed.ws")


class _PolicyViolation(Exception):
    """The client broke the rules often enough that we stop talking to it."""


async def websocket_endpoint(websocket: WebSocket) -> None:
    state = websocket.app.state
    hub: Hub = state.hub
    log: EventLog = state.log
    readers: Readers = state.readers
    if not is_allowed_origin(websocket, state.settings.allowed_origins):
        await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    stats: Stats = state.stats
    await websocket.accept()
    if readers.going_away.is_set():
        await websocket.close(CloseCode.GOING_AWAY)  # reconnect now, to another server
        return
    subscription = Subscription(hub, log)
    with readers.connected(WS):
        tasks = {
            asyncio.create_task(_read(websocket, subscription, stats)): "read",
            asyncio.create_task(_write(websocket, subscription, stats)): "write",
            asyncio.create_task(subscription.overflowed.wait()): "slow",
            asyncio.create_task(readers.my_turn_to_leave()): "away",
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            subscription.close()
        first = next(iter(done))
        code = _close_code(tasks[first], first)
        if code == CloseCode.TRY_AGAIN_LATER:
            stats.slow_disconnects[WS] += 1
        logger.debug("reader left (%s, close code %s)", tasks[first], code)
        await _close(websocket, code)


def _close_code(reason: str, task: asyncio.Task[Any]) -> CloseCode | None:
    if reason == "slow":
        return CloseCode.TRY_AGAIN_LATER
    if reason == "away":
        return CloseCode.GOING_AWAY
    if reason == "read" and isinstance(task.exception(), _PolicyViolation):
        return CloseCode.POLICY_VIOLATION
    return None  # the client left


async def _close(websocket: WebSocket, code: CloseCode | None) -> None:
    if code is None:
        return
    # A reader who stopped reading may never take the close frame; do not wait on it.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code), 1.0)


async def _read(websocket: WebSocket, subscription: Subscription, stats: Stats) -> None:
    bad_frames: deque[float] = deque()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        try:
            if text is None:
                raise FrameError("send JSON in text frames", code=errors.BAD_FRAME)
            await _handle(parse_frame(text), subscription, stats)
        except LivefeedError as exc:
            subscription.send(error_frame(exc.code, exc.message))
            if isinstance(exc, errors.Unavailable):
                continue  # our trouble, not the client's
            now = time.monotonic()
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
