"""A Redis Cluster master fails over under load: 3 masters with a replica each, two
livefeed processes with ``LIVEFEED_REDIS_MIN_REPLICAS=1``, 200 readers, briefs at 50/s
through the API and 50/s through the ingest stream; the master serving the briefs topic is
SIGKILLed and its replica takes over. livefeed follows without a restart (slots refreshed,
sharded pub/sub resubscribed on the new owner, ingest still consumed), and gives the same
guarantees as with Sentinel: no acknowledged brief lost, every reader gets every brief
once and in order, writes refused no longer than the failover plus 2 s.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.crc import key_slot

from livefeed.storage.keys import Keys
from tests.cluster import RedisCluster
from tests.helpers import FACTOR, TIMEOUT
from tests.reliability.checker import Checker, start_all, stop_all
from tests.reliability.conftest import Publisher, history
from tests.reliability.test_failover import (
    KILL_AFTER,
    LOAD_SECONDS,
    RATE,
    READERS,
    TOKEN,
    IngestProducer,
    Run,
    _metric,
    _report,
    _until,
    _ws,
)


async def _drained(port: int, stream: str) -> bool:
    client = aioredis.RedisCluster(host="127.0.0.1", port=port, decode_responses=True)
    try:
        groups = await client.xinfo_groups(stream)
    finally:
        await client.aclose()
    return bool(groups) and all(g["pending"] == 0 and g["lag"] == 0 for g in groups)


async def test_a_cluster_master_sigkilled_under_load_loses_no_acknowledged_brief(
    tmp_path: Path, livefeed_process: Any, prefix: str
) -> None:
    cluster = RedisCluster(tmp_path / "cluster", masters=3, replicas=1, node_timeout_ms=1000)
    await asyncio.to_thread(cluster.start)
    env = {
        "LIVEFEED_REDIS_URL": cluster.url,
        "LIVEFEED_REDIS_PREFIX": prefix,
        "LIVEFEED_REDIS_MIN_REPLICAS": "1",
        "LIVEFEED_EDITOR_TOKEN": TOKEN,
        "LIVEFEED_LOG_LEVEL": "warning",
        "LIVEFEED_DRAIN_SECONDS": "0.5",
    }
    keys = Keys(prefix)
    slot = key_slot(keys.log("briefs").encode())
    processes: list[Any] = []
    readers: list[Checker] = []
    try:
        processes = [await livefeed_process(env=env), await livefeed_process(env=env)]
        async with httpx.AsyncClient(base_url=processes[0].url, timeout=TIMEOUT) as api:
            ready = (await api.get("/readyz")).json()
            assert ready["redis"] == {"deployment": "cluster", "role": "cluster"}, ready
            since = (await api.get("/api/briefs", params={"limit": 1})).json()["last_event_id"]
        urls = [_ws(p) for p in processes]
        readers = [
            Checker(urls[i % 2 :] + urls[: i % 2], since={"briefs": since}, name=f"r{i}")
            for i in range(READERS)
        ]
        for batch in range(0, READERS, 50):
            await start_all(readers[batch : batch + 50], timeout=TIMEOUT * 4)
        publisher = Publisher(processes[0].url, TOKEN, rate=RATE)
        doomed = cluster.master_of_slot(slot)
        survivor = next(p for p in cluster.ports if p != doomed)
        producer = IngestProducer([], keys.ingest(), RATE, 1, cluster_port=survivor)
        publisher.start(seconds=LOAD_SECONDS)
        producer.start(seconds=LOAD_SECONDS)
        await asyncio.sleep(KILL_AFTER)
        await asyncio.to_thread(cluster.kill, doomed)
        killed_at, killed_wall = time.monotonic(), time.time()
        await _until(
            lambda: cluster.master_of_slot(slot) != doomed,
            "the replica to take over the briefs slot",
            timeout=20,
        )
        failover_seconds = time.monotonic() - killed_at
        # Restarted by its supervisor, the old master rejoins as the new one's replica, so
        # that shard can confirm writes (MIN_REPLICAS=1) again.
        await asyncio.to_thread(cluster.restart, doomed)
        await publisher.wait()
        await producer.wait()
        await _until(lambda: _drained(survivor, keys.ingest()), "the ingest consumer to drain", 20)
        owner = f"redis://127.0.0.1:{cluster.master_of_slot(slot)}/0"
        truth = await history(owner, prefix)
        truth_ids = [event_id for event_id, _ in truth]
        await _until(
            lambda: all(r.has("briefs", truth_ids[-1]) for r in readers),
            "every reader to catch up",
            timeout=20,
        )
        run = Run(readers, publisher, producer, failover_seconds, killed_at, killed_wall, truth)
        lost = set(publisher.acknowledged()) - run.truth_briefs
        assert not lost, f"acknowledged briefs lost: {sorted(lost)[:10]}"
        unanswered = [(a.latency, a.error) for a in publisher.failures() if a.status is None]
        assert set(publisher.by_status()) <= {201, 503}, (publisher.by_status(), unanswered)
        assert run.refusal_window() <= failover_seconds + 2.0 * FACTOR, (
            f"writes refused for {run.refusal_window():.2f}s, failover took {failover_seconds:.2f}s"
        )
        for reader in readers:
            reader.check("briefs", truth_ids)
        ingest_lost = len(set(producer.acked) - run.truth_briefs)
        _report(
            f"Cluster failover, MIN_REPLICAS=1 (producer-side ingest loss {ingest_lost})",
            run,
            len(lost),
        )
        assert await _metric(processes[0].url, "livefeed_redis_failovers_total") >= 1
    finally:
        await stop_all(readers)
        for process in processes:
            process.stop()
        await asyncio.to_thread(cluster.stop)
