"""Redis fails over under load (Sentinel): the primary is SIGKILLed while two livefeed
processes serve 200 readers and briefs arrive at 50/s through the API and 50/s through the
ingest stream; the old primary, restarted at once, comes back as a replica.

With ``LIVEFEED_REDIS_MIN_REPLICAS=1`` no acknowledged brief is lost and every reader gets
every brief exactly once, in order; writes are refused (503) no longer than the failover
plus 2 s. With 0 the loss is bounded and every reader either resumes exactly or is told
``recovered: false`` — never a replay with holes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from livefeed.storage.keys import Keys
from tests.helpers import FACTOR, TIMEOUT, wait_for
from tests.reliability.checker import (
    Checker,
    id_key,
    problems,
    start_all,
    stop_all,
    wait_until_all_have,
)
from tests.reliability.conftest import Publisher, history, report
from tests.reliability.sentinel import SERVICE, SentinelDeployment

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


@dataclass
class Run:
    """What one failover run measured."""

    readers: list[Checker]
    api: Publisher
    ingest: IngestProducer
    failover_seconds: float
    killed_at: float
    killed_wall: float
    truth: list[tuple[str, Any]]

    @property
    def truth_ids(self) -> list[str]:
        return [event_id for event_id, _ in self.truth]

    @property
    def truth_briefs(self) -> set[str]:
        return {data["id"] for _, data in self.truth}

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


def _ws(process: Any) -> str:
    return str(process.url).replace("http", "ws", 1) + "/ws"


async def _until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float) -> None:
    await wait_for(check, timeout=timeout * FACTOR, what=what)


async def _failover_run(
    tmp_path: Path,
    livefeed_process: Callable[..., Awaitable[Any]],
    prefix: str,
    *,
    min_replicas: int,
    replicas: int,
    readers_count: int = READERS,
    cut_before_kill: float = 0.0,
) -> tuple[SentinelDeployment, list[Any], Run]:
    """Readers and publishers on two processes; the primary is SIGKILLed (after
    ``cut_before_kill`` seconds without replication, if set) and restarted at once."""
    began = time.monotonic()
    deployment = SentinelDeployment(tmp_path / "redis", replicas=replicas)
    await asyncio.to_thread(deployment.start)
    env = {
        "LIVEFEED_REDIS_URL": deployment.url,
        "LIVEFEED_REDIS_PREFIX": prefix,
        "LIVEFEED_REDIS_MIN_REPLICAS": str(min_replicas),
        "LIVEFEED_EDITOR_TOKEN": TOKEN,
        "LIVEFEED_LOG_LEVEL": "warning",
        "LIVEFEED_DRAIN_SECONDS": "0.5",
    }
    processes: list[Any] = []
    readers: list[Checker] = []
    try:
        processes = [await livefeed_process(env=env), await livefeed_process(env=env)]
        async with httpx.AsyncClient(base_url=processes[0].url, timeout=TIMEOUT) as api:
            ready = (await api.get("/readyz")).json()
            assert ready["redis"] == {"deployment": "sentinel", "role": "master"}, ready
            since = (await api.get("/api/briefs", params={"limit": 1})).json()["last_event_id"]
        urls = [_ws(p) for p in processes]
        readers = [
            Checker(urls[i % 2 :] + urls[: i % 2], since={"briefs": since}, name=f"r{i}")
            for i in range(readers_count)
        ]
        # In batches, so the start is not itself a load spike on a shared CI machine.
        for batch in range(0, readers_count, 50):
            await start_all(readers[batch : batch + 50], timeout=TIMEOUT * 4)
        report(f"setup took {time.monotonic() - began:.1f}s")
        publisher = Publisher(processes[0].url, TOKEN, rate=RATE)
        sentinels = [("127.0.0.1", s.port) for s in deployment.sentinels]
        producer = IngestProducer(sentinels, Keys(prefix).ingest(), RATE, min_replicas)
        publisher.start(seconds=LOAD_SECONDS)
        producer.start(seconds=LOAD_SECONDS)
        await asyncio.sleep(KILL_AFTER)
        if cut_before_kill:
            await asyncio.to_thread(deployment.cut_replication)
            await asyncio.sleep(cut_before_kill)
        doomed = deployment.primary
        doomed.stop(signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        await _until(
            lambda: deployment.master_port() not in (None, doomed.port),
            "the sentinels to promote a replica",
            timeout=20,
        )
        # A loaded machine can make the sentinels fail the new primary over once more
        # (it missed pings for a second): the failover ends when the primary stops moving.
        switches = asyncio.create_task(_switches(deployment, killed_at))
        # Its supervisor restarts the old primary: it comes back empty, as a primary, until
        # the sentinels make it a replica of the new one. Without persistence it must never
        # be promoted again (Redis's own advice): on a loaded machine the sentinels once
        # failed over to it before its first sync and the whole dataset was gone.
        await asyncio.to_thread(doomed.restart_unpromotable)
        await publisher.wait()
        await producer.wait()
        switches.cancel()
        moves = await switches
        failover_seconds = moves[-1]
        report(
            f"the primary moved {len(moves)} time(s), last {failover_seconds:.2f}s after the kill"
        )

        async def drained() -> bool:
            # The consumer group has read and settled every entry the new primary holds
            # (with MIN_REPLICAS=0 the producer's own unreplicated entries may be gone).
            port = await asyncio.to_thread(deployment.master_port)
            if port is None:
                return False
            client = aioredis.Redis(port=port, decode_responses=True)
            try:
                groups = await client.xinfo_groups(Keys(prefix).ingest())
            except (RedisError, OSError):
                return False  # between a promotion and the next producer write
            finally:
                await client.aclose()
            return bool(groups) and all(g["pending"] == 0 and g["lag"] == 0 for g in groups)

        try:
            await _until(drained, "the ingest consumer to publish every entry", 20)
        except AssertionError:
            raise AssertionError(
                "ingest not drained\n" + "\n".join(p.output[-3000:] for p in processes)
            ) from None
        new_primary = f"redis://127.0.0.1:{deployment.master_port()}/0"
        truth = await history(new_primary, prefix)
        truth_ids = [event_id for event_id, _ in truth]
        await _until(
            # A reader told recovered: false gets what follows its notice live, so it
            # has the last brief too.
            lambda: all(r.has("briefs", truth_ids[-1]) for r in readers),
            "every reader to catch up",
            timeout=20,
        )
    except BaseException:
        await stop_all(readers)
        await _stop(processes, deployment)
        raise
    run = Run(readers, publisher, producer, failover_seconds, killed_at, killed_wall, truth)
    return deployment, processes, run


async def _switches(deployment: SentinelDeployment, killed_at: float) -> list[float]:
    """Seconds after the kill at which the sentinels named a new primary, until cancelled."""
    moves = [time.monotonic() - killed_at]
    port = deployment.master_port()
    try:
        while True:
            await asyncio.sleep(0.1)
            now = await asyncio.to_thread(deployment.master_port)
            if now is not None and now != port:
                port = now
                moves.append(time.monotonic() - killed_at)
    except asyncio.CancelledError:
        return moves


def exact_or_told(reader: Checker, truth: Sequence[str]) -> list[str]:
    """What is wrong with a reader that must either have resumed exactly or been told
    ``recovered: false``: before the notice it may hold events the new primary never had
    (the dead primary's unreplicated tail), but after it, every event from where it was
    told up to the end, once and in order — and without a notice, exactly ``truth``."""
    told = reader.not_recovered("briefs")
    got = reader.ids["briefs"]
    if not told:
        return problems(got, truth)
    after = got[told[-1] :]
    if not after:
        return []
    if after[0] not in truth:
        return [f"after recovered: false got {after[0]}, which no primary holds"]
    return problems(after, truth[truth.index(after[0]) :])


async def _old_primary_returns(
    deployment: SentinelDeployment, processes: list[Any], run: Run, prefix: str
) -> None:
    """Once the sentinels made the restarted old primary a replica, publish more: readers
    get it all, with no close and no ``recovered: false``."""
    old = deployment.primary
    # Sentinel reconfigures a returning primary only after it has reported itself a
    # primary for a while (8 s) on its slow replica INFO cycle (10 s): 10-30 s here.
    await _until(lambda: old.role() == "slave", "the old primary to rejoin as a replica", 40)
    report(f"old primary a replica {time.monotonic() - run.killed_at:.1f}s after the kill")
    marks = {
        r.name: (len(r.closes), len(r.not_recovered("briefs")), len(r.ids["briefs"]))
        for r in run.readers
    }
    publisher = Publisher(processes[1].url, TOKEN, rate=RATE, label="after")
    publisher.start(seconds=2.0)
    await publisher.wait()
    assert publisher.by_status() == {201: int(2.0 * RATE)}, publisher.failures()[:3]
    primary = f"redis://127.0.0.1:{deployment.master_port()}/0"
    last = id_key(run.truth_ids[-1])
    added = [i for i, _ in await history(primary, prefix) if id_key(i) > last]
    assert len(added) == int(2.0 * RATE)
    await wait_until_all_have(run.readers, "briefs", added, timeout=TIMEOUT * 4)
    for reader in run.readers:
        closes, told, count = marks[reader.name]
        assert (len(reader.closes), len(reader.not_recovered("briefs"))) == (closes, told), (
            f"{reader.name} was disturbed by the old primary's return: {reader.closes}"
        )
        assert not problems(reader.ids["briefs"][count:], added), reader.name


async def _stop(processes: list[Any], deployment: SentinelDeployment) -> None:
    for process in processes:
        process.stop()
    await asyncio.to_thread(deployment.stop)


async def _metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def _report(label: str, run: Run, lost: int) -> None:
    told = sum(bool(r.not_recovered("briefs")) for r in run.readers)
    closes = sum(len(r.closes) for r in run.readers)
    report(
        f"{label}: failover {run.failover_seconds:.2f}s, writes refused "
        f"for {run.refusal_window():.2f}s ({len(run.api.failures())} API 503s, slowest API "
        f"answer {max(a.latency for a in run.api.answers):.2f}s), every reader "
        f"had the first post-kill brief {run.catch_up():.2f}s after the kill; "
        f"{len(run.truth)} briefs in history, {lost} acknowledged briefs lost; "
        f"{told} readers told recovered: false, {closes} reader disconnects"
    )


async def test_with_min_replicas_1_a_primary_sigkill_loses_no_acknowledged_brief(
    tmp_path: Path, livefeed_process: Any, prefix: str
) -> None:
    # Two replicas: after the promotion the other one follows the new primary, so WAIT
    # can be satisfied again (with one, writes wait for the old primary to come back).
    deployment, processes, run = await _failover_run(
        tmp_path, livefeed_process, prefix, min_replicas=1, replicas=2
    )
    try:
        lost = set(run.api.acknowledged()) - run.truth_briefs
        lost |= set(run.ingest.acked) - run.truth_briefs
        assert not lost, f"acknowledged briefs lost: {sorted(lost)[:10]}"
        unanswered = [(a.latency, a.error) for a in run.api.failures() if a.status is None]
        assert set(run.api.by_status()) <= {201, 503}, (run.api.by_status(), unanswered)
        assert all(a.retry_after for a in run.api.failures()), run.api.failures()[:3]
        assert run.refusal_window() <= run.failover_seconds + 2.0 * FACTOR, (
            f"writes refused for {run.refusal_window():.2f}s, "
            f"failover took {run.failover_seconds:.2f}s"
        )
        for reader in run.readers:
            reader.check("briefs", run.truth_ids)
        _report("Sentinel failover, MIN_REPLICAS=1, 2 replicas", run, len(lost))
        assert await _metric(processes[0].url, "livefeed_redis_failovers_total") >= 1
        refused = await _metric(processes[0].url, "livefeed_redis_writes_refused_seconds_total")
        if len(run.api.failures()) > 1:  # one streak, about as long as the API saw it
            assert 0 < refused <= run.refusal_window() + 1.0, refused
        # (The old primary's return is checked with MIN_REPLICAS=0 below: its wait for the
        # sentinels would make this test twice as long.)
    finally:
        await stop_all(run.readers)
        await _stop(processes, deployment)


async def test_with_min_replicas_0_loss_is_bounded_and_no_reader_gets_a_replay_with_holes(
    tmp_path: Path, livefeed_process: Any, prefix: str
) -> None:
    deployment, processes, run = await _failover_run(
        tmp_path, livefeed_process, prefix, min_replicas=0, replicas=1
    )
    try:
        lost = set(run.api.acknowledged()) - run.truth_briefs
        lost |= set(run.ingest.acked) - run.truth_briefs
        # Asynchronous replication loses at most what the replica had not received when
        # the primary died: on loopback, well under a second of writes.
        assert len(lost) <= 2 * RATE, f"{len(lost)} acknowledged briefs lost"
        unanswered = [(a.latency, a.error) for a in run.api.failures() if a.status is None]
        assert set(run.api.by_status()) <= {201, 503}, (run.api.by_status(), unanswered)
        wrong = {r.name: exact_or_told(r, run.truth_ids) for r in run.readers}
        wrong = {name: found for name, found in wrong.items() if found}
        assert not wrong, f"{len(wrong)} readers with holes: {list(wrong.items())[:3]}"
        _report("Sentinel failover, MIN_REPLICAS=0, 1 replica", run, len(lost))
        await _old_primary_returns(deployment, processes, run, prefix)
    finally:
        await stop_all(run.readers)
        await _stop(processes, deployment)


async def test_with_min_replicas_0_readers_of_an_unreplicated_tail_are_told_not_recovered(
    tmp_path: Path, livefeed_process: Any, prefix: str
) -> None:
    # Replication stops half a second before the kill: readers got briefs live that the
    # promoted replica never had. Their resume point is not in the new primary's history:
    # they must hear recovered: false, never get a replay that skips the lost briefs.
    deployment, processes, run = await _failover_run(
        tmp_path,
        livefeed_process,
        prefix,
        min_replicas=0,
        replicas=1,
        readers_count=50,
        cut_before_kill=0.5,
    )
    try:
        lost = set(run.api.acknowledged()) - run.truth_briefs
        assert lost, "the test meant to lose the unreplicated tail, and lost nothing"
        wrong = {r.name: exact_or_told(r, run.truth_ids) for r in run.readers}
        wrong = {name: found for name, found in wrong.items() if found}
        assert not wrong, f"{len(wrong)} readers with holes: {list(wrong.items())[:3]}"
        untold = [r.name for r in run.readers if not r.not_recovered("briefs")]
        assert not untold, f"readers who held lost briefs but were not told: {untold[:5]}"
        _report(
            "Sentinel failover, MIN_REPLICAS=0, replication cut 0.5 s before the kill",
            run,
            len(lost),
        )
    finally:
        await stop_all(run.readers)
        await _stop(processes, deployment)


async def test_with_min_replicas_1_an_unreplicated_tail_was_never_acknowledged_nor_seen(
    tmp_path: Path, livefeed_process: Any, prefix: str
) -> None:
    # The same cut with MIN_REPLICAS=1: those writes are refused (503) and their events
    # are not published live, so no reader sees what the failover takes back.
    deployment, processes, run = await _failover_run(
        tmp_path,
        livefeed_process,
        prefix,
        min_replicas=1,
        replicas=2,
        readers_count=50,
        cut_before_kill=0.5,
    )
    try:
        lost = set(run.api.acknowledged()) - run.truth_briefs
        assert not lost, f"acknowledged briefs lost: {sorted(lost)[:10]}"
        assert run.api.by_status().get(503), "the cut should have refused writes"
        for reader in run.readers:
            reader.check("briefs", run.truth_ids)
        _report(
            "Sentinel failover, MIN_REPLICAS=1, replication cut 0.5 s before the kill",
            run,
            len(lost),
        )
    finally:
        await stop_all(run.readers)
        await _stop(processes, deployment)
