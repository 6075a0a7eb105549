"""A primary SIGKILLed under load, whatever the deployment (Sentinel or Cluster): the run
both failover suites share, and what it measured.

Two livefeed processes serve 200 readers while briefs arrive at 50/s through the API and
50/s through the ingest stream; the primary (of the briefs topic) is killed, a replica takes
over, the killed node is restarted as its supervisor would. ``failover`` yields the ``Run``
once every reader has caught up with the new primary's history, and stops it all after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from livefeed.storage.keys import Keys
from tests.helpers import FACTOR, TIMEOUT, livefeed_env, wait_for
from tests.reliability.checker import Checker
from tests.reliability.sentinel import SERVICE
from tests.reliability.toolkit import Publisher, Watch, checkers, position, report

TOKEN = "failover-token"
READERS = 200
RATE = 50.0  # briefs per second, through the API and again through the ingest stream
LOAD_SECONDS = 8.0
KILL_AFTER = 2.0


@dataclass
class IngestProducer:
    """Another service writing briefs to the ingest stream through Sentinel at a steady
    rate. With ``min_replicas`` it counts an entry as written only once WAIT confirms it,
    as a careful producer would; else once the primary answers."""

    sentinel_url_hosts: list[tuple[str, int]]
    stream: str
    rate: float
    min_replicas: int
    cluster_port: int = 0  # write to this cluster instead (no WAIT: it needs one node)
    acked: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self, seconds: float) -> None:
        self._task = asyncio.create_task(self._run(seconds))

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def _run(self, seconds: float) -> None:
        sentinel = Sentinel(self.sentinel_url_hosts, sentinel_kwargs={"socket_timeout": 1})
        primary: Any = sentinel.master_for(SERVICE, socket_timeout=2, socket_connect_timeout=1)
        if self.cluster_port:
            primary = aioredis.RedisCluster(
                host="127.0.0.1", port=self.cluster_port, socket_timeout=2
            )
        try:
            # One write at a time on one connection, as a simple producer does; a write
            # that hangs in the failover delays the next ones.
            loop = asyncio.get_running_loop()
            start = loop.time()
            tick = 0
            while tick / self.rate < seconds:
                await asyncio.sleep(max(0.0, start + tick / self.rate - loop.time()))
                await self._add(primary, tick)
                tick += 1
        finally:
            await primary.aclose()
            for client in sentinel.sentinels:
                await client.aclose()

    async def _add(self, primary: Any, n: int) -> None:
        brief_id = f"ingest{n}"
        payload = json.dumps({"id": brief_id, "text": f"ingest {n}"})
        try:
            pipe = primary.pipeline(transaction=False)
            pipe.xadd(self.stream, {"brief": payload})
            if self.min_replicas and not self.cluster_port:
                pipe.execute_command("WAIT", self.min_replicas, 1000)
            replies = await pipe.execute()
        except (RedisError, OSError):
            self.unsure.append(brief_id)
            return
        if self.min_replicas and not self.cluster_port and int(replies[1]) < self.min_replicas:
            self.unsure.append(brief_id)
        else:
            self.acked.append(brief_id)


class Target:
    """The Redis deployment a run kills the primary of (Sentinel's, or the Cluster master
    serving the briefs topic)."""

    name: str  # in reports: "Sentinel failover, 2 replicas"
    url: str  # what livefeed is given
    readiness: dict[str, str]  # what /readyz must say of it
    # Whether the failover ends only when the primary stops moving: a loaded machine can
    # make the sentinels fail the new primary over once more.
    follows_moves = False

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def producer(self, stream: str, min_replicas: int) -> IngestProducer:
        raise NotImplementedError

    def cut_replication(self) -> None:
        raise NotImplementedError

    def kill(self) -> int:
        """SIGKILL the primary; its port."""
        raise NotImplementedError

    def primary_port(self) -> int | None:
        raise NotImplementedError

    def restart(self) -> None:
        """Start the killed node again, as its supervisor would."""
        raise NotImplementedError

    async def drained(self, stream: str) -> bool:
        """Whether the consumer group has read and settled every entry of ``stream``."""
        raise NotImplementedError


@dataclass
class Run:
    """What one failover run measured."""

    label: str  # what was run, for the report
    prefix: str
    target: Target
    processes: list[Any]
    readers: list[Checker]
    api: Publisher
    ingest: IngestProducer
    failover_seconds: float
    moves: int  # how many times the primary moved (a loaded machine can see a second move)
    killed_at: float
    killed_wall: float
    truth: list[tuple[str, Any]]

    @property
    def truth_ids(self) -> list[str]:
        return [event_id for event_id, _ in self.truth]

    @property
    def truth_briefs(self) -> set[str]:
        return {data["id"] for _, data in self.truth}

    def lost(self, *, ingest: bool) -> set[str]:
        """Acknowledged briefs (through the API, and the ingest stream if ``ingest``) that
        are not in the history."""
        acknowledged = set(self.api.acknowledged())
        if ingest:
            acknowledged |= set(self.ingest.acked)
        return acknowledged - self.truth_briefs

    def refusal_window(self) -> float:
        """From the first refused API write being sent to the last refusal's answer."""
        refused = self.api.failures()
        if not refused:
            return 0.0
        return max(a.sent_at + a.latency for a in refused) - min(a.sent_at for a in refused)

    def catch_up(self) -> float:
        """From the kill until every reader had its first brief written after it."""
        after = [i for i in self.truth_ids if int(i.rsplit("-", 2)[1]) > self.killed_wall * 1000]
        assert after, "no brief was written after the failover"
        # A reader told recovered: false refetches what came before its notice, so it
        # counts from the first post-kill brief it got live.
        firsts = [
            min(r.arrived["briefs"][i] for i in after if r.has("briefs", i))
            for r in self.readers
            if any(r.has("briefs", i) for i in after)
        ]
        return max(firsts) - self.killed_at

    def assert_answered_201_or_503(self) -> None:
        unanswered = [(a.latency, a.error) for a in self.api.failures() if a.status is None]
        assert set(self.api.by_status()) <= {201, 503}, (self.api.by_status(), unanswered)

    def assert_refused_no_longer_than_the_failover(self) -> None:
        # Each move leaves the new primary without a replica to confirm writes until one
        # follows it: up to 2 s a move after the last one.
        assert self.refusal_window() <= self.failover_seconds + 2.0 * FACTOR * self.moves, (
            f"writes refused for {self.refusal_window():.2f}s, "
            f"failover took {self.failover_seconds:.2f}s ({self.moves} move(s))"
        )

    def check_readers(self) -> None:
        """Every reader got every brief of the history once, in order."""
        for reader in self.readers:
            reader.check("briefs", self.truth_ids)

    def report(self, lost: int, note: str = "") -> None:
        label = f"{self.label} ({note})" if note else self.label
        told = sum(bool(r.not_recovered("briefs")) for r in self.readers)
        closes = sum(len(r.closes) for r in self.readers)
        report(
            f"{label}: failover {self.failover_seconds:.2f}s, writes refused "
            f"for {self.refusal_window():.2f}s ({len(self.api.failures())} API 503s, slowest "
            f"API answer {max(a.latency for a in self.api.answers):.2f}s), every reader "
            f"had the first post-kill brief {self.catch_up():.2f}s after the kill; "
            f"{len(self.truth)} briefs in history, {lost} acknowledged briefs lost; "
            f"{told} readers told recovered: false, {closes} reader disconnects"
        )


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float) -> None:
    await wait_for(check, timeout=timeout * FACTOR, what=what)


async def metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


@contextlib.asynccontextmanager
async def failover(
    target: Target,
    livefeed_process: Callable[..., Awaitable[Any]],
    prefix: str,
    *,
    min_replicas: int,
    readers: int = READERS,
    cut_before_kill: float = 0.0,
) -> AsyncIterator[Run]:
    """Readers and publishers on two processes; the primary is SIGKILLed (after
    ``cut_before_kill`` seconds without replication, if set) and restarted at once."""
    began = time.monotonic()
    await asyncio.to_thread(target.start)
    env = livefeed_env(
        target.url,
        prefix,
        TOKEN,
        redis_min_replicas=min_replicas,
        log_level="warning",
        drain_seconds=0.5,
    )
    processes: list[Any] = []
    try:
        processes = [await livefeed_process(env=env), await livefeed_process(env=env)]
        async with httpx.AsyncClient(base_url=processes[0].url, timeout=TIMEOUT) as api:
            ready = (await api.get("/readyz")).json()
        assert ready["redis"] == target.readiness, ready
        since = await position(processes[0].url)
        followers = checkers([p.ws_url for p in processes], readers, since, spread=True)
        publisher = Publisher(processes[0].url, TOKEN, rate=RATE)
        async with Watch(followers, publisher, "", prefix, start_timeout=TIMEOUT * 4) as watch:
            report(f"setup took {time.monotonic() - began:.1f}s")
            run = await _kill_the_primary(target, watch, processes, min_replicas, cut_before_kill)
            run.label = f"{target.name}, MIN_REPLICAS={min_replicas}"
            if cut_before_kill:
                run.label += f", replication cut {cut_before_kill} s before the kill"
            yield run
    finally:
        for process in processes:
            process.stop()
        await asyncio.to_thread(target.stop)


async def _kill_the_primary(
    target: Target, watch: Watch, processes: list[Any], min_replicas: int, cut_before_kill: float
) -> Run:
    stream = Keys(watch.prefix).ingest()
    producer = target.producer(stream, min_replicas)
    watch.publisher.start(seconds=LOAD_SECONDS)
    producer.start(seconds=LOAD_SECONDS)
    await asyncio.sleep(KILL_AFTER)
    if cut_before_kill:
        await asyncio.to_thread(target.cut_replication)
        await asyncio.sleep(cut_before_kill)
    doomed = target.kill()
    killed_at, killed_wall = time.monotonic(), time.time()
    await until(lambda: target.primary_port() not in (None, doomed), "a replica to take over", 20)
    failover_seconds, moves = time.monotonic() - killed_at, 1
    switches = asyncio.create_task(_switches(target, killed_at)) if target.follows_moves else None
    await asyncio.to_thread(target.restart)
    await watch.publisher.wait()
    await producer.wait()
    if switches is not None:
        switches.cancel()
        times = await switches
        failover_seconds, moves = times[-1], len(times)
        report(f"the primary moved {moves} time(s), last {failover_seconds:.2f}s after the kill")
    try:
        await until(
            lambda: target.drained(stream), "the ingest consumer to publish every entry", 20
        )
    except AssertionError:
        raise AssertionError(
            "ingest not drained\n" + "\n".join(p.output[-3000:] for p in processes)
        ) from None
    # A reader told recovered: false gets what follows its notice live, so it has the
    # last brief too.
    watch.redis_url = f"redis://127.0.0.1:{target.primary_port()}/0"
    await watch.settle(timeout=20 * FACTOR)
    return Run(
        "",
        watch.prefix,
        target,
        processes,
        watch.readers,
        watch.publisher,
        producer,
        failover_seconds,
        moves,
        killed_at,
        killed_wall,
        watch.truth,
    )


async def _switches(target: Target, killed_at: float) -> list[float]:
    """Seconds after the kill at which a new primary was named, until cancelled."""
    moves = [time.monotonic() - killed_at]
    port = target.primary_port()
    try:
        while True:
            await asyncio.sleep(0.1)
            now = await asyncio.to_thread(target.primary_port)
            if now is not None and now != port:
                port = now
                moves.append(time.monotonic() - killed_at)
    except asyncio.CancelledError:
        return moves
