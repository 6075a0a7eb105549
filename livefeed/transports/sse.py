"""``/events``: Server-Sent Events over the same Subscription as the WebSocket.

Each record's ``id:`` is a cursor holding the last event id of every topic of the stream,
so a browser's EventSource that reconnects with ``Last-Event-ID`` resumes all of them.
The stream, a heartbeat, the client's disconnect, a too-slow reader and server shutdown
are raced in one place; whichever comes first ends the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from livefeed import errors, limits
from livefeed.errors import LivefeedError
from livefeed.events import Event, decode_cursor, encode_cursor, is_topic
from livefeed.fanout.readers import EndReason, Readers
from livefeed.fanout.subscription import Subscription
from livefeed.services import services_of
from livefeed.stats import SSE, Stats
from livefeed.web.requests import is_allowed_origin

logger = logging.getLogger("livefeed.sse")

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    "Connection": "keep-alive",
}


_RETRY = {"Retry-After": str(limits.RETRY_AFTER_REDIS_DOWN)}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(errors.LivefeedError(message, code=code).to_json(), status_code=status)


async def events_endpoint(request: Request) -> Response:
    if not is_allowed_origin(request, services_of(request).settings.allowed_origins):
        return _error(403, errors.FORBIDDEN_ORIGIN, "this origin may not open a live stream")
    topics = request.query_params.getlist("topic")
    if not topics:
        return _error(400, errors.UNKNOWN_TOPIC, "give at least one ?topic=")
    if len(topics) > limits.SSE_TOPICS_MAX:
        return _error(400, errors.TOO_MANY_SUBSCRIPTIONS, f"at most {limits.SSE_TOPICS_MAX} topics")
    for topic in topics:
        if not is_topic(topic):
            return _error(400, errors.UNKNOWN_TOPIC, f"unknown topic {topic[:100]!r}")
    cursor = request.headers.get("last-event-id") or request.query_params.get("since")
    positions: dict[str, str] | None = {}
    if cursor:
        positions = decode_cursor(cursor)
    readers: Readers = services_of(request).readers
    if readers.going_away.is_set():
        return _error(503, errors.UNAVAILABLE, "server is restarting, reconnect")
    subscription = Subscription(services_of(request).hub, services_of(request).log)
    stats: Stats = services_of(request).stats
    known: dict[str, str] = {}
    try:
        for topic in dict.fromkeys(topics):
            # A cursor we cannot read resumes nothing: every topic answers recovered: false.
            since = "-" if positions is None else positions.get(topic)
            # The position before joining is where this stream's cursor starts for a topic
            # it cannot resume (or was not asked to), so a reconnect resumes it from there.
            start = await subscription.position(topic)
            recovered = await subscription.subscribe(topic, since or start)
            if since:
                stats.resumes[recovered] += 1
            known[topic] = since if since and recovered else start
    except LivefeedError as exc:
        subscription.close()
        return JSONResponse(
            exc.to_json(), exc.status, headers=_RETRY if exc.status == 503 else None
        )
    except BaseException:
        subscription.close()
        raise
    return EventStream(subscription, readers, known, stats)


def _record(event_type: str, cursor: str | None, data: str) -> bytes:
    lines = [f"event: {event_type}"]
    if cursor is not None:
        lines.append(f"id: {cursor}")
    # Frames are compact JSON without raw newlines, but split anyway to keep SSE framing safe.
    # Only on the line ends SSE knows (\n, \r): str.splitlines() also splits on U+2028,
    # U+2029 and others that JSON carries raw, and would break the frame into invalid JSON.
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


class EventStream(Response):
    """The streaming response of one SSE reader."""

    def __init__(
        self,
        subscription: Subscription,
        readers: Readers,
        positions: dict[str, str],
        stats: Stats,
    ) -> None:
        self._stats = stats
        super().__init__(headers=HEADERS)
        # A stream has no length: drop the Content-Length: 0 an empty Response would send.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._subscription = subscription
        self._readers = readers
        self._positions = positions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self._subscription
        with self._readers.connected(SSE):
            try:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                # Sent at once so proxies and browsers see the stream open immediately.
                await send(
                    {"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True}
                )
                # Whichever ends first ends the response; each says why.
                tasks = {
                    asyncio.create_task(self._stream(send)): EndReason.WRITE_FAILED,
                    asyncio.create_task(_until_disconnect(receive)): EndReason.LEFT,
                    asyncio.create_task(subscription.overflowed.wait()): EndReason.TOO_SLOW,
                    asyncio.create_task(self._readers.my_turn_to_leave()): EndReason.GOING_AWAY,
                }
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    reason = tasks[done.pop()]
                    if subscription.overflowed.is_set():
                        reason = EndReason.TOO_SLOW
                        self._stats.slow_disconnects[SSE] += 1
                    logger.debug("reader left (%s)", reason)
                finally:
                    for task in tasks:
                        task.cancel()
                    for task in tasks:
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
            finally:
                subscription.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}), 1.0
                )

    async def _stream(self, send: Send) -> None:
        while True:
            try:
                item = await asyncio.wait_for(
                    self._subscription.next(), limits.SSE_HEARTBEAT_INTERVAL
                )
            except TimeoutError:
                await send(
                    {"type": "http.response.body", "body": b": heartbeat\n\n", "more_body": True}
                )
                continue
            if isinstance(item, Event):
                self._positions[item.topic] = str(item.id)
                body = _record(item.type, encode_cursor(self._positions), item.frame)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                self._stats.delivered_event(SSE, item.id.ms)
            else:
                control = json.loads(item)
                body = _record(control["type"], encode_cursor(self._positions), item)
                await send({"type": "http.response.body", "body": body, "more_body": True})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
