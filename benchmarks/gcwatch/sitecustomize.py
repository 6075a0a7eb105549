"""Garbage-collector pauses of a benchmarked server, whatever the server (fanout.py).

fanout.py puts this directory on the server's PYTHONPATH with ``BENCH_GC_FILE`` set;
Python imports ``sitecustomize`` at startup. Every pause of 2 ms or more is appended as
``<unix time> <seconds> <generation>``, so the benchmark takes the longest within the
window it measures (not the collections of the server's own startup).
"""

import gc
import os
import time

_PATH = os.environ.get("BENCH_GC_FILE")
_started = 0.0


def _watch(phase: str, info: dict[str, int]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    pause = time.perf_counter() - _started
    if pause >= 0.002 and _PATH:
        with open(_PATH, "a") as out:
            out.write(f"{time.time():.3f} {pause:.6f} {info['generation']}\n")


if _PATH:
    gc.callbacks.append(_watch)
