"""The ingest in Redis: a stream read by one consumer at a time, a dead-letter stream.

Contract:

- One process at a time holds the *lease* (``storage.lease``) and reads the stream through
  the consumer group, so entries are handled in stream order; a lease not renewed expires
  and another process takes over, first re-reading what the dead one left pending.
- ``settle`` acknowledges an entry (and removes it: its brief lives on in the briefs
  topic); ``dead_letter`` adds the entry to the dead-letter stream and acknowledges it in
  one MULTI, so a crash between the two cannot dead-letter it twice.
- ``claim`` decides, atomically across processes, which one handles a pub/sub message.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from livefeed import limits
from livefeed.storage.keys import Keys
from livefeed.storage.lease import Lease


def consumer_name() -> str:
    """A consumer name unique to this process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its id and its fields, as bytes, as the service sent them."""

    id: str
    fields: dict[bytes, bytes]


class IngestStore:
    """Redis operations of the ingest; ``redis`` must not decode responses (payloads stay bytes)."""

    def __init__(self, redis: Redis, keys: Keys, consumer: str) -> None:
        self._redis = redis
        self._keys = keys
        self.consumer = consumer
        self.lease = Lease(redis, keys.ingest_lease(), consumer, limits.INGEST_LEASE_TTL)

    async def ensure_group(self) -> None:
        """Create the consumer group reading from the start, so entries added before any
        livefeed ran are published too."""
        try:
            await self._redis.xgroup_create(
                self._keys.ingest(), limits.INGEST_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def adopt_pending(self) -> None:
        """Take over every entry another consumer left unacknowledged."""
        start = "0-0"
        while True:
            reply = await self._redis.xautoclaim(
                self._keys.ingest(),
                limits.INGEST_GROUP,
                self.consumer,
                0,
                start,
                count=limits.INGEST_BATCH,
            )
            start = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
            if start == "0-0":
                return

    async def read(self, *, pending: bool) -> list[Entry]:
        """Our pending entries (``pending``), or new ones, waiting briefly for some."""
        reply: Any = await self._redis.xreadgroup(
            limits.INGEST_GROUP,
            self.consumer,
            {self._keys.ingest(): "0" if pending else ">"},
            count=limits.INGEST_BATCH,
            block=None if pending else int(limits.INGEST_BLOCK * 1000),
        )
        entries = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                if fields is None:
                    fields = {}  # deleted while pending: nothing to publish
                entries.append(Entry(entry_id.decode(), fields))
        return entries

    async def settle(self, entry_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._keys.ingest(), limits.INGEST_GROUP, entry_id)
            pipe.xdel(self._keys.ingest(), entry_id)
            await pipe.execute()

    async def dead_letter(
        self, reason: str, payload: bytes, source: str, entry_id: str | None = None
    ) -> None:
        """Record a payload that cannot be published (and settle its entry, if any)."""
        # On a cluster the two streams live on different slots: no MULTI across them, so a
        # crash between the two steps could dead-letter an entry twice (never lose it).
        atomic = not isinstance(self._redis, RedisCluster)
        async with self._redis.pipeline(transaction=atomic) as pipe:
            pipe.xadd(
                self._keys.ingest_dead(),
                {"reason": reason, "payload": payload, "source": source},
                maxlen=100_000,
                approximate=True,
            )
            if entry_id is not None:
                pipe.xack(self._keys.ingest(), limits.INGEST_GROUP, entry_id)
                pipe.xdel(self._keys.ingest(), entry_id)
            await pipe.execute()

    async def claim(self, digest: str) -> bool:
        """True for exactly one process asking about the same pub/sub message."""
        key = self._keys.ingest_claim(digest)
        ttl = int(limits.INGEST_CLAIM_TTL * 1000)
        return bool(await self._redis.set(key, self.consumer, nx=True, px=ttl))
