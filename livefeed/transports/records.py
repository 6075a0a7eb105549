"""SSE records: the wire form of an event or a control frame on ``/events``.

``record`` builds one; ``RecordCache`` builds the record of the event being fanned out
once for all the readers whose cursor it fully determines (a stream of one topic: its
cursor is that topic's id alone), as ``serving/frames.py`` does for WebSocket frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic

from livefeed.events import Event, encode_cursor
from livefeed.stats import SSE, Stats

HEARTBEAT = b": heartbeat\n\n"


def record(event_type: str, cursor: str | None, data: str) -> bytes:
    """One SSE record: ``event:``, ``id:`` (the cursor, if any), the data lines."""
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


def event_record(event: Event, positions: dict[str, str]) -> bytes:
    """The record of ``event`` on a stream whose topics stand at ``positions``."""
    return record(event.type, encode_cursor(positions), event.frame)


class RecordCache:
    """The framed record of the event being fanned out to one-topic streams, built once;
    its deliveries counted once.

    The hub hands one event to every reader in a row, so one remembered event is enough.
    Deliveries are added to the stats (count and latency) once the fan-out is over.
    """

    __slots__ = ("_count", "_event", "_events", "_framed", "_stats", "at")

    def __init__(self) -> None:
        self._stats: Stats | None = None
        self._event: Event | None = None
        self._events: list[Event] | None = None  # a list the hub gathered (deliver_all)
        self._framed = b""
        self._count = 0
        self.at = 0.0  # when the current event's record was built (monotonic)

    def of(self, event: Event, stats: Stats, frame: Callable[[bytes], bytes]) -> bytes:
        """``event``'s record on a stream of its topic alone, framed by ``frame`` (the same
        for every caller), counted in ``stats`` as delivered once more."""
        if event is not self._event or stats is not self._stats:
            self.flush()
            self._event = event
            self._stats = stats
            self._framed = frame(event_record(event, {event.topic: str(event.id)}))
            self.at = monotonic()
            asyncio.get_running_loop().call_soon(self.flush)
        self._count += 1
        return self._framed

    def of_all(self, events: list[Event], stats: Stats, frame: Callable[[bytes], bytes]) -> bytes:
        """The records of ``events`` (one topic's, in order) in one framed chunk, counted in
        ``stats`` as delivered once more."""
        if events is not self._events or stats is not self._stats:
            self.flush()
            self._events = events
            self._stats = stats
            self._framed = frame(b"".join(event_record(e, {e.topic: str(e.id)}) for e in events))
            self.at = monotonic()
            asyncio.get_running_loop().call_soon(self.flush)
        self._count += 1
        return self._framed

    def flush(self) -> None:
        count, stats = self._count, self._stats
        if count and stats is not None:
            if self._event is not None:
                stats.delivered_event(SSE, self._event.id.ms, count)
            for event in self._events or ():
                stats.delivered_event(SSE, event.id.ms, count)
        self._count = 0
        self._event = self._events = None


# One per process: the event objects of different hubs (apps) are never the same.
RECORDS = RecordCache()
