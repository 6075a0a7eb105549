"""Readers: the open reader connections of this process, and sending them away when it leaves."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterator
from enum import StrEnum

from livefeed.stats import SSE, WS


class EndReason(StrEnum):
    """Why a reader's connection ended; each transport turns it into what the client sees."""

    LEFT = "left"  # the client closed or went away
    WRITE_FAILED = "write_failed"  # a write to the client failed (it is gone)
    TOO_SLOW = "too_slow"  # its send queue overflowed: 1013, resume later
    GOING_AWAY = "going_away"  # the server is draining: 1001, reconnect elsewhere now
    POLICY = "policy"  # too many bad frames: 1008, stop
    STOPPED = "stopped"  # the server cancelled the connection's task


class Readers:
    """Counts open connections by transport; ``drain`` sends them all away, then waits.

    Connections leave at random moments spread over the drain window, so thousands of
    readers do not all reconnect to the remaining servers in the same instant. Each
    connection registers the callback that ends it (``on_leave``); no connection needs a
    task of its own to wait for its turn.
    """

    def __init__(self, drain_window: float = 0.0) -> None:
        self.going_away = asyncio.Event()
        self.drain_window = drain_window
        self._open = {WS: 0, SSE: 0}
        self._idle = asyncio.Event()
        self._idle.set()
        self._staying: set[Callable[[], None]] = set()

    def counts(self) -> dict[str, int]:
        return dict(self._open)

    @contextlib.contextmanager
    def connected(self, transport: str) -> Iterator[None]:
        self.opened(transport)
        try:
            yield
        finally:
            self.closed(transport)

    def opened(self, transport: str) -> None:
        """One more open connection (``connected`` in a with-block; this where a reader's
        coroutine should not hold a context manager for its whole life)."""
        self._open[transport] += 1
        self._idle.clear()

    def closed(self, transport: str) -> None:
        self._open[transport] -= 1
        if not any(self._open.values()):
            self._idle.set()

    def on_leave(self, leave: Callable[[], None]) -> None:
        """Call ``leave`` (once, on the loop) at this connection's moment to go, once the
        server is going away; at once if it already is. ``forget`` it when the connection ends."""
        self._staying.add(leave)
        if self.going_away.is_set():
            self._schedule(leave)

    def forget(self, leave: Callable[[], None]) -> None:
        """The connection ended by itself: do not call its ``leave``."""
        self._staying.discard(leave)

    async def my_turn_to_leave(self) -> None:
        """Returns when this connection should close because the server is going away."""
        turn = asyncio.get_running_loop().create_future()

        def leave() -> None:
            if not turn.done():
                turn.set_result(None)

        self.on_leave(leave)
        try:
            await turn
        finally:
            self.forget(leave)

    async def drain(self) -> None:
        """Tell every connection the server is going away and wait (bounded) until they close."""
        self.going_away.set()
        for leave in self._staying:
            self._schedule(leave)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.drain_window + 2.0)

    def _schedule(self, leave: Callable[[], None]) -> None:
        delay = random.uniform(0, self.drain_window)
        asyncio.get_running_loop().call_later(delay, self._send_away, leave)

    def _send_away(self, leave: Callable[[], None]) -> None:
        if leave in self._staying:
            self._staying.discard(leave)
            leave()
