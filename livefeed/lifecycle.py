"""Stopping background tasks for sure.

On Python 3.11, ``asyncio.wait_for`` (which redis-py uses for every command) can swallow a
cancellation that arrives as its inner call completes (CPython gh-86296, fixed in 3.12),
so one ``task.cancel()`` may leave a busy loop running. ``stop_tasks`` cancels again until
each task has really ended, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger("livefeed")

_RETRY = 0.05


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]], within: float = 5.0) -> None:
    """Cancel ``tasks`` and wait until all have ended (or ``within`` seconds have passed)."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=_RETRY)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                logger.error("task %r ended with %r while stopping", task, task.exception())
    for task in pending:
        logger.error("task %r did not stop within %.1f s", task, within)


# The key under which an app's ASGI lifespan state offers its server a coroutine function
# that drains the app's readers; the server awaits it before shutting down. A name, like
# the ``livefeed.frames`` extension, so the server needs none of the app's modules.
DRAIN_READERS = "livefeed.drain_readers"
