"""SSE records: the wire form of an event or a control frame on ``/events``.

``record`` builds one; ``RecordCache`` builds the record of the event being fanned out
once for all the readers whose cursor it fully determines (a stream of one topic: its
cursor is that topic's id alone), as ``serving/frames.py`` does for WebSocket frames.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

from livefeed.events import Event, encode_cursor
from livefeed.stats import SSE, FanOutTally

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


class RecordCache(FanOutTally):
    """The framed record of the event being fanned out to one-topic streams (or the records
    of a list the hub gathered, in one chunk), built once; deliveries counted once per
    fan-out (``FanOutTally``). ``of(event, stats, frame)`` / ``of_all(events, stats, frame)``:
    ``frame`` is the writer's chunk framing, the same for every caller."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        super().__init__(SSE)
        self.at = 0.0  # when the current record was built (monotonic)

    def _build(self, item: Event | list[Event], how: Callable[[bytes], bytes]) -> bytes:
        self.at = monotonic()
        events = item if isinstance(item, list) else [item]
        return how(b"".join(event_record(e, {e.topic: str(e.id)}) for e in events))

    of = of_all = FanOutTally.take


# One per process: the event objects of different hubs (apps) are never the same.
RECORDS = RecordCache()
