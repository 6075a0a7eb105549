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
from collections.abc import Coroutine
from time import monotonic
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from livefeed import errors, limits
from livefeed.errors import LivefeedError
from livefeed.events import Event, EventId, decode_cursor, encode_cursor, is_topic
from livefeed.fanout.readers import EndReason, Readers
from livefeed.fanout.subscription import Outgoing, Subscription
from livefeed.services import services_of
from livefeed.stats import SSE, Stats
from livefeed.transports.body import BodyWriter, body_writer_for
from livefeed.transports.records import HEARTBEAT, RECORDS, record
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


class EventStream(Response):
    """The streaming response of one SSE reader.

    Where the server offers ``livefeed.body`` (``transports/body.py``; livefeed's own
    server does), the hub's fan-out writes each record straight to the reader's socket,
    the record of an event built once for every one-topic stream, and the stream's task
    only keeps the heartbeat. Under any other ASGI server a task drains the
    subscription's bounded queue with ``send``.
    """

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
        # Each topic's last event id sent (an EventId until a cursor needs its text).
        self._positions: dict[str, str | EventId] = dict(positions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self._subscription
        writer: BodyWriter | None = None
        with self._readers.connected(SSE):
            try:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                # Sent at once so proxies and browsers see the stream open immediately.
                await send(
                    {"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True}
                )
                writer = body_writer_for(scope)
                direct = None
                if writer is not None:
                    direct = _Direct(writer, subscription, self._positions, self._stats)
                    if not writer.start(direct.write_waiting):
                        direct = None
                if direct is not None:
                    subscription.sink = direct.write_now
                    subscription.events_sink = direct.write_all_now
                    direct.write_waiting()  # the subscribed record and any replay wait
                    await self._race(direct.heartbeat(), receive)
                else:
                    await self._race(self._stream(send), receive)
            finally:
                subscription.sink = subscription.events_sink = None
                if writer is not None:
                    writer.stop()
                subscription.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}), 1.0
                )

    async def _race(self, stream: Coroutine[Any, Any, None], receive: Receive) -> None:
        """Whichever ends first ends the response; each says why."""
        subscription = self._subscription
        tasks = {
            asyncio.create_task(stream): EndReason.WRITE_FAILED,
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

    # -- through ASGI send ----------------------------------------------------------------

    async def _stream(self, send: Send) -> None:
        while True:
            try:
                async with asyncio.timeout(limits.SSE_HEARTBEAT_INTERVAL):  # no task per wait
                    item = await self._subscription.next()
            except TimeoutError:
                await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
                continue
            body = _record(item, self._positions)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if isinstance(item, Event):
                self._stats.delivered_event(SSE, item.id.ms)


def _record(item: Outgoing, positions: dict[str, str | EventId]) -> bytes:
    """The record of ``item`` on a stream whose topics stand at ``positions`` (updated)."""
    if isinstance(item, Event):
        positions[item.topic] = item.id
        event_type, data = item.type, item.frame
    else:
        event_type, data = json.loads(item)["type"], item
    return record(event_type, encode_cursor({t: str(at) for t, at in positions.items()}), data)


class _Direct:
    """One stream's records written past ASGI, by the fan-out itself (``livefeed.body``).

    Apart from the response object, small and slotted: the fan-out reaches it once per
    reader per event. While the socket takes data, each record is written as it is
    delivered (an event's record shared by every one-topic stream); what was queued
    while it pushed back is written, in order, when it takes data again.
    """

    __slots__ = (
        "_frame",
        "_last",
        "_one_topic",
        "_positions",
        "_stats",
        "_subscription",
        "_writer",
        "last_write",
    )

    def __init__(
        self,
        writer: BodyWriter,
        subscription: Subscription,
        positions: dict[str, str | EventId],
        stats: Stats,
    ) -> None:
        self._writer = writer
        self._frame = writer.frame
        self._subscription = subscription
        self._positions = positions
        # One topic: an event's cursor is its id alone, the same for every such stream.
        self._one_topic = len(positions) == 1
        # The last event the fan-out wrote to a one-topic stream: kept rather than put
        # into ``positions`` for each event, and put there when a cursor is needed.
        self._last: Event | None = None
        self._stats = stats
        self.last_write = monotonic()  # the heartbeat's clock

    def write_now(self, item: Outgoing) -> bool:
        """The subscription's sink: write ``item`` now, or refuse it (it is then queued)."""
        writer = self._writer
        if not writer.is_writable:
            return False
        if self._one_topic and isinstance(item, Event):  # the fan-out's case, inlined
            records, write = RECORDS, writer.write  # a slot read, unlike writer.write(...)
            write(records.of(item, self._stats, self._frame))
            self._last = item
            self.last_write = records.at  # when this fan-out began: no clock read per reader
        else:
            self._write(item)
        return True

    def write_all_now(self, events: list[Event]) -> bool:
        """The subscription's sink for events the hub gathered while busy: one write for
        all of them (their records built once for every one-topic stream)."""
        writer = self._writer
        if not writer.is_writable:
            return False
        if self._one_topic:
            records = RECORDS
            writer.write(records.of_all(events, self._stats, self._frame))
            self._last = events[-1]
            self.last_write = records.at
        else:
            for event in events:
                self._write(event)
        return True

    def _write(self, item: Outgoing) -> None:
        """Write ``item`` with a record of its own (a control record, a queued event, or
        an event on a stream of several topics)."""
        last = self._last
        if last is not None:
            self._positions[last.topic] = last.id
            self._last = None
        self._writer.write(self._frame(_record(item, self._positions)))
        if isinstance(item, Event):
            self._stats.delivered_event(SSE, item.id.ms)
        self.last_write = monotonic()

    def write_waiting(self) -> None:
        """Write what waited while the socket pushed back, until it pushes back again."""
        subscription, writer = self._subscription, self._writer
        while subscription.has_pending and writer.is_writable:
            self._write(subscription.pop())

    async def heartbeat(self) -> None:
        """A comment after every ``SSE_HEARTBEAT_INTERVAL`` without a record."""
        interval = limits.SSE_HEARTBEAT_INTERVAL
        while True:
            await asyncio.sleep(self.last_write + interval - monotonic())
            if monotonic() - self.last_write < interval:
                continue  # records went out while it slept
            if self._writer.is_writable:
                self._writer.write(self._frame(HEARTBEAT))
            self.last_write = monotonic()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
