"""``livefeed serve`` under tracemalloc, for benchmarks/reader_memory.py. Run by that script.

SIGUSR1 writes the live Python heap, by the line that allocated it, as JSON to
``$TRACED_SNAPSHOT`` (the signal handler runs on the main thread between bytecodes, so
the snapshot is of a quiet event loop).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tracemalloc
from types import FrameType


def _dump(_signum: int, _frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot()
    by_file: dict[str, list[int]] = {}
    for stat in snapshot.statistics("lineno"):
        frame = stat.traceback[0]
        name = f"{frame.filename}:{frame.lineno}"
        size_count = by_file.setdefault(name, [0, 0])
        size_count[0] += stat.size
        size_count[1] += stat.count
    with open(os.environ["TRACED_SNAPSHOT"], "w") as f:
        json.dump(by_file, f)


if __name__ == "__main__":
    tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, _dump)
    from livefeed.cli.main import main

    sys.argv = ["livefeed", *sys.argv[1:]]
    raise SystemExit(main())
