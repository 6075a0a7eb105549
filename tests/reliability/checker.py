"""The checker client: a reader that never gives up and proves nothing was lost.

It connects over WebSocket, subscribes to its topics (with ``since`` once it has seen an
event), records every frame, and when the connection ends it reconnects — to the next
server of its list after 1001 ("elsewhere") or a dead connection — resuming from the last
id it saw. ``check`` then compares what it got for a topic with the ground truth (the
topic's stream, or the acknowledged writes): no gap, no duplicate, ascending ids.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.helpers import TIMEOUT, cancel_and_wait, wait_for

# Every event frame starts with this header (events.frame_parts); matching it is far
# cheaper than json.loads for readers that take thousands of frames a second.
_HEAD = re.compile(r'\{"type":"([a-z.]+)","topic":"([^"]+)","id":"([^"]+)","data":')

GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013


def id_key(event_id: str) -> tuple[str, int, int]:
    """``<epoch>-<ms>-<seq>`` as a sortable tuple (ids of one epoch compare)."""
    epoch, ms, seq = event_id.rsplit("-", 2)
    return epoch, int(ms), int(seq)


def problems(got: Sequence[str], truth: Sequence[str]) -> list[str]:
    """What is wrong with ``got`` as a delivery of ``truth``: gaps, duplicates, order."""
    found = []
    seen = set(got)
    expected = set(truth)
    missing = [i for i in truth if i not in seen]
    if missing:
        found.append(f"{len(missing)} missing (gap), first {missing[:5]}")
    dups = [i for i, n in Counter(got).items() if n > 1]
    if dups:
        found.append(f"{len(dups)} duplicated, first {dups[:5]}")
    extra = [i for i in got if i not in expected]
    if extra:
        found.append(f"{len(extra)} not in the truth, first {extra[:5]}")
    backwards = [
        (a, b)
        for a, b in itertools.pairwise(got)
        if id_key(a)[0] == id_key(b)[0] and id_key(b) <= id_key(a)
    ]
    if backwards:
        found.append(f"{len(backwards)} out of order, first {backwards[:3]}")
    if not found and list(got) != list(truth):
        found.append("same ids in another order")
    return found


class Checker:
    """One reader that records every frame and resumes from its last id after a close."""

    def __init__(
        self,
        urls: Sequence[str],
        topics: Iterable[str] = ("briefs",),
        since: dict[str, str] | None = None,
        *,
        name: str = "reader",
        keep_data: bool = False,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self.urls = list(urls)
        # Passed to websockets.connect, e.g. local_addr=("127.0.0.7", 0) for a source address.
        self.connect_options = dict(connect_options or {})
        self.topics = list(topics)
        self.name = name
        self.keep_data = keep_data
        self.since = dict(since or {})
        self.last: dict[str, str | None] = {t: self.since.get(t) for t in self.topics}
        self.ids: dict[str, list[str]] = {t: [] for t in self.topics}
        self.arrived: dict[str, dict[str, float]] = {t: {} for t in self.topics}
        self.data: dict[str, list[dict[str, Any]]] = {t: [] for t in self.topics}
        # (topic, recovered, how many events of the topic had arrived before it)
        self.subscribed: list[tuple[str, bool, int]] = []
        self.errors: list[dict[str, Any]] = []
        self.closes: list[int | None] = []  # close code received; None: the TCP just ended
        self.close_times: list[float] = []
        self.connections = 0
        self.failed_connects = 0
        self.live = asyncio.Event()  # subscribed to every topic on the current connection
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"checker {self.name}")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        turn = 0
        while not self._stopping:
            url = self.urls[turn % len(self.urls)]
            code: int | None = None
            try:
                ws = await websockets.connect(
                    url, open_timeout=TIMEOUT, close_timeout=1, **self.connect_options
                )
            except (OSError, InvalidHandshake, TimeoutError):
                self.failed_connects += 1
                turn += 1  # that server is not there: try the next one
                await asyncio.sleep(random.uniform(0.02, 0.1))
                continue
            self.connections += 1
            try:
                await self._session(ws)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                self.closes.append(code)
                self.close_times.append(time.monotonic())
            finally:
                self.live.clear()
                await ws.close()
            if code in (GOING_AWAY, None):
                turn += 1  # "reconnect now, elsewhere" (or the server vanished)
            # Full jitter, as livefeed's own client does; 1013 asks us to wait longer.
            await asyncio.sleep(random.uniform(0, 0.5 if code == TRY_AGAIN_LATER else 0.1))

    async def _session(self, ws: ClientConnection) -> None:
        for topic in self.topics:
            frame: dict[str, str] = {"type": "subscribe", "topic": topic}
            last = self.last[topic]
            if last is not None:
                frame["since"] = last
            await ws.send(json.dumps(frame))
        pending = set(self.topics)
        while True:
            raw = await ws.recv()  # raises ConnectionClosed, also for a clean close
            if isinstance(raw, bytes):
                raise AssertionError(f"{self.name}: unexpected binary frame {raw[:80]!r}")
            topic = self._record(raw)
            if topic is not None and pending:
                pending.discard(topic)
                if not pending:
                    self.live.set()

    def _record(self, raw: str) -> str | None:
        """Record one frame; the topic of a ``subscribed`` frame, else None."""
        head = _HEAD.match(raw)
        if head is not None:
            _, topic, event_id = head.groups()
            if topic not in self.ids:
                raise AssertionError(f"{self.name}: event of a topic not followed: {raw[:120]}")
            self.ids[topic].append(event_id)
            self.arrived[topic].setdefault(event_id, time.monotonic())
            self.last[topic] = event_id
            if self.keep_data:
                self.data[topic].append(json.loads(raw)["data"])
            return None
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "subscribed":
            topic = frame["topic"]
            self.subscribed.append((topic, frame["recovered"], len(self.ids[topic])))
            return str(topic)
        if kind == "error":
            self.errors.append(frame)
            return None
        raise AssertionError(f"{self.name}: unexpected frame {raw[:200]}")

    # -- checking -----------------------------------------------------------------------

    def has(self, topic: str, event_id: str) -> bool:
        return event_id in self.arrived[topic]

    def not_recovered(self, topic: str) -> list[int]:
        """Where (after how many events) the server answered ``recovered: false``."""
        return [n for t, recovered, n in self.subscribed if t == topic and not recovered]

    def check(self, topic: str, truth: Sequence[str]) -> None:
        """Assert this reader got exactly ``truth``: no gap, no duplicate, ascending ids."""
        found = problems(self.ids[topic], truth)
        if self.not_recovered(topic):
            found.append(f"recovered: false after {self.not_recovered(topic)} events")
        if self.errors:
            found.append(f"error frames {self.errors[:3]}")
        assert not found, (
            f"{self.name} on {topic} ({len(self.ids[topic])} received, {len(truth)} expected, "
            f"{self.connections} connections, closes {self.closes}): " + "; ".join(found)
        )


async def start_all(checkers: Sequence[Checker], timeout: float = TIMEOUT) -> None:
    """Start the checkers and wait until every one is subscribed."""
    for checker in checkers:
        checker.start()
    try:
        await wait_for(lambda: all(c.live.is_set() for c in checkers), timeout=timeout)
    except AssertionError:
        waiting = [c for c in checkers if not c.live.is_set()]
        sample = [
            (c.name, c.connections, c.failed_connects, c.closes[-3:], c.errors[-1:])
            for c in waiting[:5]
        ]
        raise AssertionError(
            f"{len(waiting)} of {len(checkers)} checkers not subscribed after {timeout:.1f}s; "
            f"(name, connections, failed connects, closes, errors): {sample}"
        ) from None


async def stop_all(checkers: Sequence[Checker]) -> None:
    await asyncio.gather(*(c.stop() for c in checkers))


async def wait_until_all_have(
    checkers: Sequence[Checker], topic: str, truth: Sequence[str], timeout: float = TIMEOUT
) -> None:
    """Wait until every checker has every event of ``truth`` (or fail, naming the laggards)."""
    if not truth:
        return
    wanted = list(truth)

    def done() -> bool:
        # Events arrive in order, so the last one stands for all; ``check`` proves the rest.
        return all(c.has(topic, wanted[-1]) for c in checkers)

    try:
        await wait_for(done, timeout=timeout, what=f"every checker to get {len(wanted)} events")
    except AssertionError:
        laggards = {
            c.name: sum(not c.has(topic, i) for i in wanted)
            for c in checkers
            if not all(c.has(topic, i) for i in wanted)
        }
        raise AssertionError(
            f"still missing after {timeout:.1f}s (per reader): {laggards}"
        ) from None
