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
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

import livefeed
from tests.helpers import FACTOR, TIMEOUT, livefeed_env, wait_for
from tests.reliability.checker import Checker, id_key, problems, wait_until_all_have
from tests.reliability.failover import (
    RATE,
    TOKEN,
    IngestProducer,
    Run,
    Target,
    failover,
    metric,
    until,
)
from tests.reliability.sentinel import Node, SentinelDeployment
from tests.reliability.toolkit import (
    Publisher,
    Watch,
    checkers,
    history,
    history_ids,
    position,
    report,
)


class SentinelTarget(Target):
    """A Sentinel deployment; its primary is the one killed."""

    readiness = {"deployment": "sentinel", "role": "master"}
    follows_moves = True

    def __init__(self, directory: Path, replicas: int) -> None:
        self.deployment = SentinelDeployment(directory, replicas=replicas)
        self.url = self.deployment.url
        self.name = f"Sentinel failover, {replicas} replica{'s' if replicas > 1 else ''}"

    def start(self) -> None:
        self.deployment.start()

    def stop(self) -> None:
        self.deployment.stop()

    def producer(self, stream: str, min_replicas: int) -> IngestProducer:
        sentinels = [("127.0.0.1", s.port) for s in self.deployment.sentinels]
        return IngestProducer(sentinels, stream, RATE, min_replicas)

    def cut_replication(self) -> None:
        self.deployment.cut_replication()

    def kill(self) -> int:
        self.deployment.primary.stop(signal.SIGKILL)
        return self.deployment.primary.port

    def primary_port(self) -> int | None:
        return self.deployment.master_port()

    def restart(self) -> None:
        # Its supervisor restarts the old primary as a replica of the new one (it has no
        # persistence: see restart_as_replica); it syncs while readers keep reading.
        port = self.deployment.master_port()
        assert port is not None, "the sentinels name no primary"
        self.deployment.primary.restart_as_replica(port)

    async def drained(self, stream: str) -> bool:
        # With MIN_REPLICAS=0 the producer's own unreplicated entries may be gone.
        port = await asyncio.to_thread(self.primary_port)
        if port is None:
            return False
        client = aioredis.Redis(port=port, decode_responses=True)
        try:
            groups = await client.xinfo_groups(stream)
        except (RedisError, OSError):
            return False  # between a promotion and the next producer write
        finally:
            await client.aclose()
        return bool(groups) and all(g["pending"] == 0 and g["lag"] == 0 for g in groups)


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


def _synced(node: Node) -> bool:
    info = node.ask("INFO", "replication")  # redis-py answers a dict
    return isinstance(info, dict) and info.get("master_link_status") == "up"


async def _old_primary_returns(run: Run) -> None:
    """Once the restarted old primary has synced as a replica, publish more: readers get it
    all, with no close and no ``recovered: false``."""
    target = run.target
    assert isinstance(target, SentinelTarget)
    old = target.deployment.primary
    await until(lambda: _synced(old), "the old primary to sync as a replica", 40)
    report(f"old primary a replica {time.monotonic() - run.killed_at:.1f}s after the kill")
    marks = {
        r.name: (len(r.closes), len(r.not_recovered("briefs")), len(r.ids["briefs"]))
        for r in run.readers
    }
    publisher = Publisher(run.processes[1].url, TOKEN, rate=RATE, label="after")
    publisher.start(seconds=2.0)
    await publisher.wait()
    assert publisher.by_status() == {201: int(2.0 * RATE)}, publisher.failures()[:3]
    primary = f"redis://127.0.0.1:{target.primary_port()}/0"
    last = id_key(run.truth_ids[-1])
    added = [i for i, _ in await history(primary, run.prefix) if id_key(i) > last]
    assert len(added) == int(2.0 * RATE)
    await wait_until_all_have(run.readers, "briefs", added, timeout=TIMEOUT * 4)
    for reader in run.readers:
        closes, told, count = marks[reader.name]
        assert (len(reader.closes), len(reader.not_recovered("briefs"))) == (closes, told), (
            f"{reader.name} was disturbed by the old primary's return: {reader.closes}"
        )
        assert not problems(reader.ids["briefs"][count:], added), reader.name


def _assert_no_holes(run: Run) -> None:
    """Every reader resumed exactly or was told ``recovered: false``."""
    wrong = {r.name: exact_or_told(r, run.truth_ids) for r in run.readers}
    wrong = {name: found for name, found in wrong.items() if found}
    assert not wrong, f"{len(wrong)} readers with holes: {list(wrong.items())[:3]}"


Failover = Callable[..., AbstractAsyncContextManager[Run]]
# Replication cut half a second before the kill, with fewer readers.
CUT: dict[str, Any] = {"readers": 50, "cut_before_kill": 0.5}


@pytest.fixture
def sentinel_failover(tmp_path: Path, livefeed_process: Any, prefix: str) -> Failover:
    """``sentinel_failover(replicas=n, min_replicas=m, …)``: a ``failover`` run on a Sentinel
    deployment of this test's own."""

    def run(*, replicas: int, **options: Any) -> AbstractAsyncContextManager[Run]:
        target = SentinelTarget(tmp_path / "redis", replicas)
        return failover(target, livefeed_process, prefix, **options)

    return run


async def test_with_min_replicas_1_a_primary_sigkill_loses_no_acknowledged_brief(
    sentinel_failover: Failover,
) -> None:
    # Two replicas: after the promotion the other one follows the new primary, so WAIT
    # can be satisfied again (with one, writes wait for the old primary to come back).
    async with sentinel_failover(replicas=2, min_replicas=1) as run:
        lost = run.lost(ingest=True)
        assert not lost, f"acknowledged briefs lost: {sorted(lost)[:10]}"
        run.assert_answered_201_or_503()
        assert all(a.retry_after for a in run.api.failures()), run.api.failures()[:3]
        run.assert_refused_no_longer_than_the_failover()
        run.check_readers()
        run.report(len(lost))
        assert await metric(run.processes[0].url, "livefeed_redis_failovers_total") >= 1
        refused = await metric(run.processes[0].url, "livefeed_redis_writes_refused_seconds_total")
        if len(run.api.failures()) > 1:  # one streak, about as long as the API saw it
            assert 0 < refused <= run.refusal_window() + 1.0, refused
        # (The old primary's return is checked with MIN_REPLICAS=0 below: its wait for the
        # sentinels would make this test twice as long.)


async def test_with_min_replicas_0_loss_is_bounded_and_no_reader_gets_a_replay_with_holes(
    sentinel_failover: Failover,
) -> None:
    async with sentinel_failover(replicas=1, min_replicas=0) as run:
        lost = run.lost(ingest=True)
        # Asynchronous replication loses at most what the replica had not received when
        # the primary died: on loopback, well under a second of writes.
        assert len(lost) <= 2 * RATE, f"{len(lost)} acknowledged briefs lost"
        run.assert_answered_201_or_503()
        _assert_no_holes(run)
        run.report(len(lost))
        await _old_primary_returns(run)


async def test_with_min_replicas_0_readers_of_an_unreplicated_tail_are_told_not_recovered(
    sentinel_failover: Failover,
) -> None:
    # Replication stops half a second before the kill: readers got briefs live that the
    # promoted replica never had. Their resume point is not in the new primary's history:
    # they must hear recovered: false, never get a replay that skips the lost briefs.
    async with sentinel_failover(replicas=1, min_replicas=0, **CUT) as run:
        lost = run.lost(ingest=False)
        assert lost, "the test meant to lose the unreplicated tail, and lost nothing"
        _assert_no_holes(run)
        untold = [r.name for r in run.readers if not r.not_recovered("briefs")]
        assert not untold, f"readers who held lost briefs but were not told: {untold[:5]}"
        run.report(len(lost))


async def test_with_min_replicas_1_an_unreplicated_tail_was_never_acknowledged_nor_seen(
    sentinel_failover: Failover,
) -> None:
    # The same cut with MIN_REPLICAS=1: those writes are refused (503) and their events
    # are not published live, so no reader sees what the failover takes back.
    async with sentinel_failover(replicas=2, min_replicas=1, **CUT) as run:
        assert run.api.by_status().get(503), "the cut should have refused writes"
        lost = run.lost(ingest=False)
        assert not lost, f"acknowledged briefs lost: {sorted(lost)[:10]}"
        run.check_readers()
        run.report(len(lost))


# Seconds from a move until every reader has briefs queued just after it (within a probe).
FOLLOW_BOUND = 8.0


async def test_readers_on_both_processes_follow_a_primary_moved_twice_while_it_stays_up(
    tmp_path: Path, livefeed_process: Any, prefix: str
) -> None:
    # Each former primary stays up, a primary with its clients (the sentinels cannot demote
    # it); it even echoes a probe published on it, yet hears nothing of the new primary.
    # No writes while the primary moves: a former primary would take them (its replicas
    # confirm them until reconfigured) and lose them, which is not this test's subject.
    deployment = SentinelDeployment(tmp_path / "redis", replicas=2)
    await asyncio.to_thread(deployment.start)
    try:
        env = livefeed_env(deployment.url, prefix, TOKEN, log_level="warning")
        processes = [await livefeed_process(env=env), await livefeed_process(env=env)]
        since = await position(processes[0].url)
        readers = checkers([p.ws_url for p in processes], 40, since, spread=True)
        async with Watch(readers, Publisher(processes[0].url, TOKEN, 1.0), "", prefix) as watch:
            for move in (1, 2):
                primary = await asyncio.to_thread(deployment.fail_over)
                deadline = time.monotonic() + FOLLOW_BOUND * FACTOR
                watch.redis_url = f"redis://127.0.0.1:{primary}/0"
                # Queued on the new primary by another service: livefeed's ingest consumer
                # must follow the primary to publish them, its hub to hear them.
                added = await _briefs_from_another_service(watch.redis_url, prefix, deadline)
                left = deadline - time.monotonic()
                await wait_until_all_have(readers, "briefs", added, timeout=max(left, 0.1))
                took = FOLLOW_BOUND * FACTOR - (deadline - time.monotonic())
                report(f"move {move}: every reader had the new briefs {took:.1f}s after it")
            watch.check(await history_ids(watch.redis_url, prefix))
    finally:
        await asyncio.to_thread(deployment.stop)


async def _briefs_from_another_service(redis_url: str, prefix: str, deadline: float) -> list[str]:
    """Queue ten briefs on the ingest stream of the primary at ``redis_url``, as another
    service would; their event ids once livefeed published them (by ``deadline``)."""
    before = len(await history_ids(redis_url, prefix))
    client = sync_redis.Redis.from_url(redis_url)
    try:
        for n in range(10):
            await asyncio.to_thread(livefeed.publish_brief, client, f"moved {n}", prefix=prefix)
    finally:
        client.close()

    async def published() -> bool:
        return len(await history_ids(redis_url, prefix)) >= before + 10

    left = deadline - time.monotonic()
    await wait_for(published, timeout=max(left, 0.1), what="livefeed to publish the briefs")
    return (await history_ids(redis_url, prefix))[before:]
