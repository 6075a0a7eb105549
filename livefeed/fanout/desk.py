"""DeskFeed: the desk's notices from the hub, fanned out to this process's editor streams.

Nothing here is replayed: a stream that falls behind is told so (``overflowed``) and ends,
and its page refetches its lists when it connects again (``livefeed.editor.live``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from livefeed import limits


class _Watcher:
    __slots__ = ("overflowed", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(limits.DESK_STREAM_QUEUE)
        self.overflowed = asyncio.Event()


class DeskFeed:
    """Desk notices from the hub, handed to every open editor stream of this process."""

    def __init__(self) -> None:
        self._watchers: set[_Watcher] = set()

    def on_message(self, data: bytes) -> None:
        """The hub's callback for the desk channel: runs on the loop, never blocks."""
        for watcher in self._watchers:
            try:
                watcher.queue.put_nowait(data)
            except asyncio.QueueFull:
                watcher.overflowed.set()

    @contextlib.contextmanager
    def watch(self) -> Iterator[_Watcher]:
        watcher = _Watcher()
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)
