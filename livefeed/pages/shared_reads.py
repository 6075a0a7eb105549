"""Reads of one thing that arrive together share one Redis call.

Under a spike many requests for the same page are handled in the same turn of the event
loop. Each needs the page's version (one round trip); the first opens a read that starts
on the loop's next turn, and every request for the same key handled before then joins
it. A request never joins a call that was already sent: the call starts after each of
its requests arrived, so each answer is at least as new as that request, and a reader
who just wrote (posted a comment, then followed the redirect) sees the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SharedReads(Generic[V]):
    """One call per key per turn of the event loop, its answer given to every caller."""

    def __init__(self) -> None:
        self._open: dict[Hashable, asyncio.Future[V]] = {}
        self._calls: set[asyncio.Task[V]] = set()

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        """What ``fetch`` answers, from a call that starts after this read began."""
        future = self._open.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._open[key] = loop.create_future()
            loop.call_soon(self._start, key, future, fetch)
        # Shielded: one caller going away (a closed connection) cancels no one else's read.
        return await asyncio.shield(future)

    def _start(
        self, key: Hashable, future: asyncio.Future[V], fetch: Callable[[], Awaitable[V]]
    ) -> None:
        del self._open[key]  # whoever comes now waits for the next call, not this one
        call = asyncio.ensure_future(fetch())
        self._calls.add(call)  # owned until done, so it is not collected mid-flight
        call.add_done_callback(lambda done: self._settle(done, future))

    def _settle(self, call: asyncio.Task[V], future: asyncio.Future[V]) -> None:
        self._calls.discard(call)
        if future.cancelled():
            return
        if call.cancelled():
            future.cancel()
        elif (error := call.exception()) is not None:
            future.set_exception(error)
            future.exception()  # each caller re-raises it; none is left unretrieved
        else:
            future.set_result(call.result())
