"""Stats: the process's counters, kept as plain numbers so the hot path pays almost nothing.

Writers of frames, the hub, the ingest and the store bump attributes here (an int add, no
lock, no label lookup); ``metrics.py`` turns them into Prometheus families only when
``/metrics`` is scraped.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections import Counter
from typing import Any

# The transports, as the by-transport counters (and the metrics' labels) name them.
WS = "ws"
SSE = "sse"

# Publish -> deliver latency buckets, in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LatencyHistogram:
    """Cumulative-on-read histogram: ``observe`` is one bisect and two adds."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, seconds: float, count: int = 1) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += count
        self.sum += seconds * count

    @property
    def count(self) -> int:
        return sum(self.counts)


class Stats:
    """Counters of one livefeed process."""

    def __init__(self) -> None:
        self.delivered = Counter[str]()  # frames written, by transport
        self.slow_disconnects = Counter[str]()  # by transport
        self.resumes = Counter[bool]()  # by recovered
        self.published = Counter[tuple[str, str]]()  # by (event type, source)
        self.dead_letters = Counter[str]()  # by ingest source
        self.http = Counter[tuple[str, int]]()  # by (route template, status)
        self.latency = LatencyHistogram()
        self.feeds = Counter[tuple[str, int]]()  # feed requests by (feed, status)
        self.embeds = Counter[str]()  # embedded readers: iframe page views, module connections
        self.pushes = Counter[str]()  # push outcomes: sent, failed, removed, retried
        # Writes refused because Redis could not take (or replicate) them: the seconds from
        # the first to the last refusal of each streak (a streak ends at a write that
        # succeeds), so idle time after a refusal is not counted.
        self.refused_seconds = 0.0
        self._refused_since: float | None = None
        self._refused_last = 0.0

    def write_refused(self) -> None:
        now = time.monotonic()
        if self._refused_since is None:
            self._refused_since = now
        self._refused_last = now

    def write_accepted(self) -> None:
        if self._refused_since is not None:
            self.refused_seconds += self._refused_last - self._refused_since
            self._refused_since = None

    @property
    def refusing_seconds(self) -> float:
        """Seconds writes were refused, counting a streak still going on."""
        since = self._refused_since
        return self.refused_seconds + (0.0 if since is None else self._refused_last - since)

    def delivered_event(self, transport: str, published_ms: int, count: int = 1) -> None:
        """``count`` frames of an event published at ``published_ms`` were just written."""
        self.delivered[transport] += count
        self.latency.observe(max(0.0, time.time() - published_ms / 1000), count)


class Pauses:
    """The collector's pauses in this process: count, total and longest, by generation."""

    __slots__ = ("_started", "collections", "longest", "seconds")

    def __init__(self) -> None:
        self._started = 0.0
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = int(info["generation"])
        self.collections[generation] += 1
        self.seconds[generation] += pause
        self.longest = max(self.longest, pause)


# One collector per process, so one record of its pauses (kept once serving/collector.py
# installed it); read by /metrics.
COLLECTOR_PAUSES = Pauses()


class FanOutTally:
    """What the fan-out writes to every reader of one event — or of one list of a topic's
    events the hub gathered — built once per fan-out; its deliveries counted once it is over.

    The hub hands one event (or list) to every reader in a row, so remembering the last one
    is enough. Subclasses say how the bytes are built (``_build``); ``take`` is what each
    reader's writer calls.
    """

    __slots__ = ("_count", "_item", "_stats", "_transport", "built")

    def __init__(self, transport: str) -> None:
        self._transport = transport
        self._stats: Stats | None = None
        self._item: Any = None
        self._count = 0
        self.built = b""

    def take(self, item: Any, stats: Stats, how: Any = None) -> bytes:
        """The bytes of ``item`` (an event or a list of them), counted as delivered once
        more in ``stats``; ``how`` is passed to ``_build``."""
        if item is not self._item or stats is not self._stats:
            self.flush()
            self._item, self._stats = item, stats
            self.built = self._build(item, how)
            asyncio.get_running_loop().call_soon(self.flush)
        self._count += 1
        return self.built

    def _build(self, item: Any, how: Any) -> bytes:
        raise NotImplementedError

    def flush(self) -> None:
        count, stats, item = self._count, self._stats, self._item
        if count and stats is not None and item is not None:
            for event in item if isinstance(item, list) else (item,):
                stats.delivered_event(self._transport, event.id.ms, count)
        self._count = 0
        self._item = None
