"""Web Push state in Redis: subscriptions, the VAPID key, the dispatcher's lease and jobs.

Contract:

- Subscriptions are keyed by the SHA-256 of their endpoint: subscribing again from the same
  browser replaces, never duplicates.
- One process at a time holds the dispatcher lease (``storage.lease``, as the ingest does).
  The dispatcher reads the briefs log from its cursor; a breaking brief becomes a *job*,
  and the job and the advanced cursor are written in one MULTI, so a brief is never queued
  twice nor skipped.
- For each job, a subscription's outcome (``sent``, ``removed``, ``failed``) is a *mark*
  written as soon as the push service answers, in one MULTI with the removal of a gone
  subscription. A dispatcher that takes over skips every marked subscription.
- Every key shares the ``{push}`` hash tag, so those MULTIs work on a Redis Cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from livefeed import limits
from livefeed.storage.keys import Keys
from livefeed.storage.lease import Lease

SENT = "sent"
REMOVED = "removed"
FAILED = "failed"
CANCELLED = "cancelled"


def subscription_id(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()[:32]


class PushStore:
    """Redis operations of Web Push; ``redis`` decodes responses."""

    def __init__(self, redis: Redis, keys: Keys, owner: str) -> None:
        self._redis = redis
        self._keys = keys
        self.lease = Lease(redis, keys.push.lease, owner, limits.PUSH_LEASE_TTL)

    # -- the VAPID key --------------------------------------------------------------------

    async def vapid_key(self, generated: str) -> str:
        """The cluster's VAPID private key: the kept one, else ``generated`` (now kept)."""
        key = self._keys.push.vapid
        await self._redis.set(key, generated, nx=True)
        return str(await self._redis.get(key))

    # -- subscriptions --------------------------------------------------------------------

    async def subscribe(self, endpoint: str, record: dict[str, Any]) -> str:
        sid = subscription_id(endpoint)
        await self._redis.hset(self._keys.push.subscriptions, sid, json.dumps(record))
        return sid

    async def unsubscribe(self, endpoint: str) -> bool:
        sid = subscription_id(endpoint)
        return bool(await self._redis.hdel(self._keys.push.subscriptions, sid))

    async def count(self) -> int:
        return int(await self._redis.hlen(self._keys.push.subscriptions))

    async def scan(self, cursor: int) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """One batch of subscriptions; the next cursor is 0 when the scan is complete."""
        cursor, found = await self._redis.hscan(
            self._keys.push.subscriptions, cursor, count=limits.PUSH_SCAN_BATCH
        )
        batch = []
        assert isinstance(found, dict)
        for sid, raw in found.items():
            try:
                batch.append((str(sid), json.loads(raw)))
            except ValueError:
                continue
        return int(cursor), batch

    # -- jobs and marks -------------------------------------------------------------------

    async def cursor(self) -> str | None:
        value = await self._redis.get(self._keys.push.cursor)
        return None if value is None else str(value)

    async def queue(self, briefs: Iterable[dict[str, Any]], cursor: str) -> None:
        """Queue a job per breaking brief and move the cursor past them, atomically."""
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            for brief in briefs:
                pipe.hset(k.push.jobs, brief["id"], json.dumps(brief))
            pipe.set(k.push.cursor, cursor)
            await pipe.execute()

    async def jobs(self) -> list[dict[str, Any]]:
        raw = await self._redis.hgetall(self._keys.push.jobs)
        jobs = [json.loads(v) for v in raw.values()]
        return sorted(jobs, key=lambda job: str(job.get("queued_at", "")))

    async def finish(self, brief_id: str) -> None:
        await self._redis.hdel(self._keys.push.jobs, brief_id)

    async def marks(self, brief_id: str) -> set[str]:
        return {str(s) for s in await self._redis.hkeys(self._keys.push.marks(brief_id))}

    async def mark(self, brief_id: str, sid: str, outcome: str) -> None:
        """Record a subscription's outcome for a brief; ``removed`` also forgets it."""
        k = self._keys
        marks = k.push.marks(brief_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(marks, sid, outcome)
            pipe.expire(marks, limits.PUSH_WINDOW * 2)
            if outcome == REMOVED:
                pipe.hdel(k.push.subscriptions, sid)
            await pipe.execute()
