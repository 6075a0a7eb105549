"""A Redis Cluster master fails over under load: 3 masters with a replica each, two
livefeed processes with ``LIVEFEED_REDIS_MIN_REPLICAS=1``, 200 readers, briefs at 50/s
through the API and 50/s through the ingest stream; the master serving the briefs topic is
SIGKILLed and its replica takes over. livefeed follows without a restart (slots refreshed,
sharded pub/sub resubscribed on the new owner, ingest still consumed), and gives the same
guarantees as with Sentinel: no acknowledged brief lost, every reader gets every brief
once and in order, writes refused no longer than the failover plus 2 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.crc import key_slot

from livefeed.storage.keys import Keys
from tests.cluster import RedisCluster
from tests.reliability.failover import RATE, IngestProducer, Target, failover, metric


class ClusterTarget(Target):
    """3 masters with a replica each; the master serving the briefs topic is the one killed."""

    name = "Cluster failover, 3 masters with a replica each"
    readiness = {"deployment": "cluster", "role": "cluster"}

    def __init__(self, directory: Path, prefix: str) -> None:
        self.cluster = RedisCluster(directory, masters=3, replicas=1, node_timeout_ms=1000)
        self.url = self.cluster.url
        self.slot = key_slot(Keys(prefix).log("briefs").encode())
        self.doomed = 0

    def start(self) -> None:
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()

    def _survivor(self) -> int:
        doomed = self.doomed or self.cluster.master_of_slot(self.slot)
        return next(p for p in self.cluster.ports if p != doomed)

    def producer(self, stream: str, min_replicas: int) -> IngestProducer:
        return IngestProducer([], stream, RATE, min_replicas, cluster_port=self._survivor())

    def kill(self) -> int:
        self.doomed = self.cluster.master_of_slot(self.slot)
        self.cluster.kill(self.doomed)
        return self.doomed

    def primary_port(self) -> int | None:
        return self.cluster.master_of_slot(self.slot)

    def restart(self) -> None:
        # The old master rejoins as the new one's replica, so that shard can confirm
        # writes (MIN_REPLICAS=1) again.
        self.cluster.restart(self.doomed)

    async def drained(self, stream: str) -> bool:
        client = aioredis.RedisCluster(
            host="127.0.0.1", port=self._survivor(), decode_responses=True
        )
        try:
            groups = await client.xinfo_groups(stream)
        finally:
            await client.aclose()
        return bool(groups) and all(g["pending"] == 0 and g["lag"] == 0 for g in groups)


async def test_a_cluster_master_sigkilled_under_load_loses_no_acknowledged_brief(
    tmp_path: Path, livefeed_process: Any, prefix: str
) -> None:
    target = ClusterTarget(tmp_path / "cluster", prefix)
    async with failover(target, livefeed_process, prefix, min_replicas=1) as run:
        lost = run.lost(ingest=False)
        assert not lost, f"acknowledged briefs lost: {sorted(lost)[:10]}"
        run.assert_answered_201_or_503()
        run.assert_refused_no_longer_than_the_failover()
        run.check_readers()
        ingest_lost = len(set(run.ingest.acked) - run.truth_briefs)
        run.report(len(lost), note=f"producer-side ingest loss {ingest_lost}")
        assert await metric(run.processes[0].url, "livefeed_redis_failovers_total") >= 1
