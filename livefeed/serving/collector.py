"""The garbage collector of a serving process: what lives long is frozen, pauses measured.

CPython's full collection walks every tracked object. A process holding 10,000 readers
holds a million of them, and walking them took 400-800 ms per full collection (measured):
every reader's frames waited that long. But a reader's objects live for the connection's
life and form no cycles (``tests/test_collector.py`` proves it for connections and
events), so walking them finds nothing. So once startup is done everything alive is
frozen (``gc.freeze``: moved where no collection looks), the young generation is
collected every 10,000 allocations instead of 700 (a reader's setup allocates a few
hundred objects), and a task freezes again whenever ``GC_FREEZE_AFTER`` objects have
reached the oldest generation: a full collection then walks at most about that many.

Frozen objects are still freed as usual when their last reference goes (a reader leaves):
only a cycle among them would never be collected, which is why none may form per reader.
Objects alive at a freeze that later become cyclic garbage (an HTTP request in flight at
that instant, say) stay; ``livefeed_gc_frozen_objects`` shows the frozen total.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

from livefeed import limits
from livefeed.stats import COLLECTOR_PAUSES

# Young generation every 10,000 net allocations; the middle one every 10 young ones; the
# oldest after 10 middle ones (and, by CPython's own rule, only once it grew by a quarter).
GC_THRESHOLDS = (10_000, 10, 10)


class Collector:
    """Tunes and watches the collector of the process that serves (``livefeed serve``)."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # What is alive once the app started lives as long as the process.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        if COLLECTOR_PAUSES not in gc.callbacks:
            gc.callbacks.append(COLLECTOR_PAUSES)
        self._task = asyncio.get_running_loop().create_task(self._keep_frozen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _keep_frozen(self) -> None:
        while True:
            await asyncio.sleep(limits.GC_FREEZE_CHECK)
            freeze_if_grown()


def freeze_if_grown() -> bool:
    """Freeze what reached the oldest generation once there is ``GC_FREEZE_AFTER`` of it
    (collected first, so no garbage is frozen); whether it did."""
    # Cheap: the oldest generation holds only what arrived since the last freeze.
    if len(gc.get_objects(generation=2)) < limits.GC_FREEZE_AFTER:
        return False
    gc.collect()
    gc.freeze()
    return True
