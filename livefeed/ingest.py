"""Redis ingest: other services publish briefs by writing to Redis.

- Reliable: ``XADD <prefix>ingest * brief '<json>'``. One livefeed process at a time (the
  lease holder) reads the stream through the consumer group, so briefs are published in
  stream order; a holder that dies leaves its lease to expire, and the next one first
  re-reads what it left pending. An entry without its own ``id`` gets one derived from its
  stream entry id, so handling an entry twice (after a crash between publish and ack)
  still publishes it once.
- Fire-and-forget: ``PUBLISH <prefix>ingest '<json>'``. Every process receives it; an
  atomic claim in Redis on the payload's digest picks the one that handles it. Identical
  payloads without an ``id`` within the claim window (a minute) count as one message.
- Invalid payloads go, once, to ``<prefix>ingest:dead`` with ``reason``, ``payload`` (the
  original bytes) and ``source``; they never stop the entries behind them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livefeed import limits, models
from livefeed.errors import LivefeedError
from livefeed.lifecycle import stop_tasks
from livefeed.models import Brief
from livefeed.stats import Stats
from livefeed.storage.content import INGEST_PUBSUB, INGEST_STREAM, Content
from livefeed.storage.eventlog import NotReplicated
from livefeed.storage.ingest import Entry, IngestStore
from livefeed.storage.lease import Backoff, keep_holding

logger = logging.getLogger("livefeed.ingest")

STREAM = "stream"
PUBSUB = "pubsub"
_SOURCES = {STREAM: INGEST_STREAM, PUBSUB: INGEST_PUBSUB}
_FIELD = b"brief"


class InvalidPayload(ValueError):
    """Why a payload cannot become a brief (goes to the dead-letter stream)."""


def parse_payload(raw: bytes, default_id: str | None = None) -> Brief:
    """The brief a service sent, or InvalidPayload with a reason a person can act on."""
    if len(raw) > limits.INGEST_PAYLOAD_MAX:
        raise InvalidPayload(f"payload is over {limits.INGEST_PAYLOAD_MAX} bytes ({len(raw)})")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload(f"not valid JSON: {exc}") from None
    if isinstance(obj, dict) and "id" not in obj and default_id is not None:
        obj = {**obj, "id": default_id}
    try:
        return models.new_brief(obj, allow_id=True)
    except LivefeedError as exc:
        raise InvalidPayload(exc.message) from None


def _entry_payload(entry: Entry) -> tuple[bytes, str | None]:
    """The brief JSON of a stream entry, and why the entry is malformed (or None)."""
    payload = entry.fields.get(_FIELD)
    unknown = sorted(k.decode("utf-8", "replace") for k in entry.fields if k != _FIELD)
    if payload is None:
        original = b"&".join(k + b"=" + v for k, v in entry.fields.items())
        return original, 'entry has no "brief" field'
    if unknown:
        return payload, f"unknown entry field(s): {', '.join(unknown)}"
    return payload, None


_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, NotReplicated, OSError)


class Ingest:
    """Consumes the ingest stream (when holding the lease) and the ingest channel."""

    def __init__(self, store: IngestStore, content: Content, stats: Stats) -> None:
        self._stats = stats
        self._store = store
        self._content = content
        self._messages: asyncio.Queue[bytes] = asyncio.Queue(limits.INGEST_PUBSUB_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self._attempts: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # published, duplicate, dropped
        self._seen: dict[str, tuple[int, float]] = {}  # pub/sub payload digest -> (count, last)
        self._backoff = Backoff(
            limits.PUBSUB_RECONNECT_BACKOFF_MIN, limits.PUBSUB_RECONNECT_BACKOFF_MAX
        )

    @property
    def holds_lease(self) -> bool:
        return self._store.lease.held

    @property
    def is_running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._consume_stream(), name="livefeed-ingest-stream"),
            asyncio.create_task(self._consume_messages(), name="livefeed-ingest-pubsub"),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        await self._store.lease.release()  # let a standby take over at once

    def on_message(self, data: bytes) -> None:
        """A PUBLISH on the ingest channel (called by the hub; must not block)."""
        try:
            self._messages.put_nowait(data)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            logger.error("ingest pub/sub queue full: dropped a message (fire-and-forget)")

    # -- the stream -----------------------------------------------------------------------

    async def _consume_stream(self) -> None:
        lease = self._store.lease
        await keep_holding(lease, self._hold_and_consume, self._backoff, "ingest stream", logger)

    async def _hold_and_consume(self) -> None:
        loop = asyncio.get_running_loop()
        await self._store.lease.wait_to_take(limits.INGEST_STANDBY_POLL)
        logger.info("consuming the ingest stream (consumer %s)", self._store.consumer)
        await self._store.ensure_group()
        await self._store.adopt_pending()
        renewed = loop.time()
        pending = True
        while True:
            if loop.time() - renewed > limits.INGEST_LEASE_RENEW:
                if not await self._store.lease.renew():
                    logger.warning("lost the ingest lease; standing by")
                    return
                renewed = loop.time()
            entries = await self._store.read(pending=pending)
            self._backoff.reset()  # Redis answers again
            for entry in entries:
                await self._handle_entry(entry)
            # Our own pending entries first (left by a failure), then new ones.
            pending = bool(entries) and pending

    async def _handle_entry(self, entry: Entry) -> None:
        payload, malformed = _entry_payload(entry)
        if malformed is None:
            try:
                brief = parse_payload(payload, default_id="i" + entry.id)
            except InvalidPayload as exc:
                malformed = str(exc)
        if malformed is not None:
            await self._dead_letter(malformed, payload, STREAM, entry.id)
            return
        try:
            await self._publish(brief, STREAM)
        except (RedisError, OSError) as exc:
            if isinstance(exc, _UNAVAILABLE):
                # Redis (or the replicas it must confirm with) is not there right now, as in
                # a failover: not this entry's fault. Retried, in order, without counting.
                raise
            self._attempts[entry.id] += 1
            if self._attempts[entry.id] < limits.INGEST_ATTEMPTS:
                raise  # retried from the pending entries after the back-off
            del self._attempts[entry.id]
            await self._dead_letter(
                f"publishing failed {limits.INGEST_ATTEMPTS} times: {exc}",
                payload,
                STREAM,
                entry.id,
            )
            return
        self._attempts.pop(entry.id, None)
        await self._store.settle(entry.id)

    # -- pub/sub --------------------------------------------------------------------------

    async def _consume_messages(self) -> None:
        while True:
            data = await self._messages.get()
            try:
                await self._handle_message(data)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.counts["dropped"] += 1
                logger.error("ingest pub/sub message lost, Redis unavailable: %s", exc)
            except Exception:
                self.counts["dropped"] += 1
                logger.exception("ingest pub/sub message lost to an unexpected error")

    async def _handle_message(self, data: bytes) -> None:
        if not await self._store.claim(self._occurrence(data)):
            return  # another process handles this one

        try:
            brief = parse_payload(data)
        except InvalidPayload as exc:
            await self._dead_letter(str(exc), data, PUBSUB)
            return
        await self._publish(brief, PUBSUB)

    def _occurrence(self, data: bytes) -> str:
        """A name for this arrival of ``data`` that every subscribed process agrees on.

        Every process receives the channel's messages in the same order, so the n-th
        arrival of the same bytes is the n-th everywhere: the claim is on digest + n, and
        the same payload published twice without an ``id`` is two briefs. A payload not
        seen for half the claim window starts counting again, as it does everywhere.
        """
        digest = hashlib.sha256(data).hexdigest()
        now = asyncio.get_running_loop().time()
        count, last = self._seen.get(digest, (0, now))
        if now - last > limits.INGEST_CLAIM_TTL / 2:
            count = 0
        self._seen[digest] = (count + 1, now)
        if len(self._seen) > limits.INGEST_SEEN_MAX:
            horizon = now - limits.INGEST_CLAIM_TTL / 2
            self._seen = {d: (n, t) for d, (n, t) in self._seen.items() if t > horizon}
        return f"{digest}:{count + 1}"

    # -- both -----------------------------------------------------------------------------

    async def _publish(self, brief: Brief, source: str) -> None:
        if await self._content.publish_brief(brief, _SOURCES[source]) is None:
            self.counts["duplicate"] += 1
            logger.info("ingest %s: brief %s was already published; skipped", source, brief.id)
        else:
            self.counts["published"] += 1
            logger.info("ingest %s: published brief %s", source, brief.id)

    async def _dead_letter(
        self, reason: str, payload: bytes, source: str, entry_id: str | None = None
    ) -> None:
        await self._store.dead_letter(reason, payload, source, entry_id)
        self._stats.dead_letters[source] += 1
        logger.warning("ingest %s: dead-lettered a payload: %s", source, reason)
