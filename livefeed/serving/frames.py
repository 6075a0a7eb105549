"""What livefeed's server offers as ``livefeed.frames``: pre-encoded frames straight to sockets.

A server's text frame is the same bytes for every reader (servers do not mask), so each
event's frame is encoded once per fan-out (``FrameCache``, one per server) and written to
every reader's transport by its ``SocketWriter``, with no coroutine per write. The contract
is ``livefeed.transports.extension.FrameWriter``; ``FrameProtocol`` (protocols.py) puts a
``SocketWriter`` into each accepted connection's scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from livefeed.events import Event
from livefeed.stats import WS, FanOutTally, Stats

# What a reader is sent: an event, or a control frame already encoded.
Outgoing = Event | str


class Waiting(Protocol):
    """What the writer needs of a reader's subscription (``livefeed.fanout.subscription``):
    its sink, and the frames that had to wait, oldest first."""

    sink: Callable[[Outgoing], bool] | None
    events_sink: Callable[[list[Event]], bool] | None

    @property
    def has_pending(self) -> bool: ...

    def pop(self) -> Outgoing: ...


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked, final text frame (what a server sends) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126, n >> 8, n & 0xFF)) + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class FrameCache(FanOutTally):
    """The frame of the event being fanned out (or the frames of a list the hub gathered),
    encoded once for every reader; deliveries counted once per fan-out (``FanOutTally``)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(WS)

    def _build(self, item: Event | list[Event], how: object) -> bytes:
        if isinstance(item, list):
            return b"".join(text_frame(event.frame.encode()) for event in item)
        return text_frame(item.frame.encode())

    # ``of(event, stats)`` and ``of_all(events, stats)``: the frame(s), counted once more.
    of = of_all = FanOutTally.take


class SocketWriter:
    """Writes one WebSocket connection's frames straight to its transport (a FrameWriter).

    The fan-out asks whether the socket takes data once per reader per event, so the
    answer is kept in three places read directly: whether the app accepted and has not
    closed (kept up to date by ``FrameProtocol.send``), the transport's pause flag, and
    the transport itself (every other way a connection ends closes the transport).
    """

    __slots__ = (
        "_cache",
        "_loop",
        "_stats",
        "_subscription",
        "_transport",
        "_writable",
        "is_open",
    )

    def __init__(self, transport: Any, writable: Any, loop: Any, cache: FrameCache) -> None:
        self._transport = transport
        self._writable = writable  # FrameProtocol's pause flag: its ``_set`` is read directly
        self._loop: asyncio.AbstractEventLoop = loop
        self._cache = cache
        self.is_open = False  # accepted, no close frame sent: kept by FrameProtocol.send
        self._subscription: Waiting | None = None
        self._stats: Stats | None = None

    @property
    def is_writable(self) -> bool:
        """Accepted and not closed, and the transport's buffer below its high-water mark."""
        return self.is_open and self._writable._set and not self._transport.is_closing()

    def attach(self, subscription: Waiting, stats: Stats) -> None:
        self._subscription = subscription
        self._stats = stats
        subscription.sink = self._write_now
        subscription.events_sink = self._write_all_now

    def detach(self) -> None:
        if self._subscription is not None:
            self._subscription.sink = self._subscription.events_sink = None
        self._subscription = self._stats = None

    def resumed(self) -> None:
        """The transport takes data again: write what waited, soon, on the loop."""
        if self._subscription is not None:
            self._loop.call_soon(self._write_waiting)

    def _write_now(self, item: Outgoing) -> bool:
        if not self.is_writable or self._stats is None:
            return False
        if isinstance(item, Event):
            self._transport.write(self._cache.of(item, self._stats))
        else:
            self._transport.write(text_frame(item.encode()))
        return True

    def _write_all_now(self, events: list[Event]) -> bool:
        if not self.is_writable or self._stats is None:
            return False
        self._transport.write(self._cache.of_all(events, self._stats))
        return True

    def _write_waiting(self) -> None:
        """Write what waited while the socket pushed back, until it pushes back again."""
        subscription, stats = self._subscription, self._stats
        if subscription is None or stats is None:
            return
        while subscription.has_pending and self.is_writable:
            item = subscription.pop()
            if isinstance(item, Event):
                self._transport.write(text_frame(item.frame.encode()))
                stats.delivered_event(WS, item.id.ms)
            else:
                self._transport.write(text_frame(item.encode()))
