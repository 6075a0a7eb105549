"""Readers: the open reader connections of this process, and the signal that it is leaving."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator

WS = "ws"
SSE = "sse"


class Readers:
    """Counts open connections by transport; ``drain`` asks them all to go, then waits."""

    def __init__(self, drain_window: float = 0.0) -> None:
        self.going_away = asyncio.Event()
        self.drain_window = drain_window
        self._open = {WS: 0, SSE: 0}
        self._idle = asyncio.Event()
        self._idle.set()

    def counts(self) -> dict[str, int]:
        return dict(self._open)

    @contextlib.contextmanager
    def connected(self, transport: str) -> Iterator[None]:
        self._open[transport] += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._open[transport] -= 1
            if not any(self._open.values()):
                self._idle.set()

    async def my_turn_to_leave(self) -> None:
        """Returns when this connection should close because the server is going away.

        Connections leave at random moments spread over the drain window, so thousands of
        readers do not all reconnect to the remaining servers in the same instant.
        """
        await self.going_away.wait()
        await asyncio.sleep(random.uniform(0, self.drain_window))

    async def drain(self) -> None:
        """Tell every connection the server is going away and wait (bounded) until they close."""
        self.going_away.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.drain_window + 2.0)
