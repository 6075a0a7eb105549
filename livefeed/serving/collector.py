"""The garbage collector of a serving process: what lives long is frozen, pauses measured.

CPython's full collection walks every tracked object. A process holding 10,000 readers
holds a million of them, and walking them took 400-800 ms per full collection (measured):
every reader's frames waited that long. But a reader's objects live for the connection's
life and form no cycles (``tests/collector/test_collector.py`` proves it for
connections and events), so walking them finds nothing. So once startup is done everything alive is
frozen (``gc.freeze``: moved where no collection looks), the generations' thresholds
keep each collection small (below), and whenever ``GC_FREEZE_AFTER`` objects have reached
the oldest generation they are frozen too (checked after each collection that can put
objects there): a full collection then walks at most about that many.

Frozen objects are still freed as usual when their last reference goes (a reader leaves):
only a cycle among them would never be collected, which is why none may form per reader.
Objects alive at a freeze that later become cyclic garbage (an HTTP request in flight at
that instant, say) stay; ``livefeed_gc_frozen_objects`` shows the frozen total.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

from livefeed import limits
from livefeed.stats import COLLECTOR_PAUSES

# Young generation every 10,000 net allocations (not 700: a reader's setup allocates a
# few hundred objects); the middle one every 2 young ones, so it never holds more than
# about 20,000 survivors (at 10, a connection storm made it 100,000 and an 87 ms pause);
# the oldest after 10 middle ones (and, by CPython's own rule, once it grew by a quarter).
GC_THRESHOLDS = (10_000, 2, 10)


class Collector:
    """Tunes and watches the collector of the process that serves (``livefeed serve``)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._check_due = False

    def start(self) -> None:
        # What is alive once the app started lives as long as the process.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self._loop = asyncio.get_running_loop()
        for callback in (COLLECTOR_PAUSES, self._collected):
            if callback not in gc.callbacks:
                gc.callbacks.append(callback)

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._collected)
        self._loop = None

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        # Survivors reach the oldest generation only from a collection of the middle one:
        # check then, on the loop (not inside the collector's own callback).
        if phase != "stop" or info["generation"] < 1 or self._check_due:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._check_due = True
            loop.call_soon_threadsafe(self._check)

    def _check(self) -> None:
        self._check_due = False
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
