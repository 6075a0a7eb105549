"""The event log: one capped Redis stream per topic, written together with its content.

Contract (what the hub and the transports rely on):

- ``append`` applies a content change, appends the topic's event and publishes its frame
  on the topic's channel in one atomic script. Either all three happen or none does, so a
  reader can never see an event the history lacks, or the reverse.
- Event ids increase strictly within a topic and carry the history's epoch.
- ``read_since(topic, id)`` returns every event after ``id``, in order, or ``GONE`` when it
  cannot return all of them (the id is not from this topic's current history, or the
  events after it were trimmed). The stream keeps ``history_size + 1`` entries, so a
  reader that missed at most ``history_size`` events always recovers. ``read_page`` does
  the same a bounded page at a time, so a reader's replay can stop at its queue bound.
- Redaction: a ``remove`` change (retract a brief, hide a comment) redacts, in the same
  script, every earlier event of its topic whose ``data.id`` is the removed object. Replays
  leave those events out; their ids stay valid resume positions.
- Reads write nothing: a topic without history yet has the position ``no_history(topic)``'s
  origin; its epoch is created by the topic's first write.
- With ``min_replicas`` > 0, ``append`` returns only once that many replicas confirmed the
  write (``WAIT``, on the connection that wrote it) and raises ``NotReplicated`` if they do
  not within ``limits.REDIS_WAIT_TIMEOUT``. The write is then on the primary but may not
  survive a failover; repeating the call is safe. Its live message is published only
  after the confirmation, so readers do not see an event a failover can take back (they
  get a refused one later from the stream, if it survived).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import string
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from typing import Any, Final

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MovedError,
    RedisError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from livefeed import limits
from livefeed.events import Event, EventId, frame_parts
from livefeed.storage.connect import Client
from livefeed.storage.keys import Keys

logger = logging.getLogger("livefeed.eventlog")


class NotReplicated(RedisError):
    """Fewer replicas than required confirmed a write in time (a RedisError, so callers
    treat it like Redis being unavailable: 503, or retry)."""


@dataclass(frozen=True, slots=True)
class _Confirmed:
    """A script call to be followed by WAIT on the same connection."""

    script: str
    keys: list[str]
    args: list[Any]
    replicas: int
    wait_ms: int

    def commands(self) -> list[tuple[Any, ...]]:
        return [
            ("EVAL", self.script, len(self.keys), *self.keys, *self.args),
            ("WAIT", self.replicas, self.wait_ms),
        ]


async def _on_one_node(cluster: RedisCluster, call: _Confirmed) -> tuple[Any, int]:
    """EVAL then WAIT on one connection to the master of the first key's slot.

    Moved slots (a failover, a resharding) refresh the client's map and try once more; the
    script's answer key makes a second run harmless."""
    try:
        return await _eval_and_wait(cluster, call)
    except (MovedError, AskError, ClusterDownError, ConnectionError):
        await cluster.nodes_manager.initialize()
        return await _eval_and_wait(cluster, call)


async def _eval_and_wait(cluster: RedisCluster, call: _Confirmed) -> tuple[Any, int]:
    key = call.keys[0]
    node = cluster.get_node_from_key(key)
    if node is None:
        raise RedisError(f"no cluster node serves {key!r}")
    connection = node.acquire_connection()
    try:
        await connection.send_packed_command(connection.pack_commands(call.commands()))
        reply = await connection.read_response()
        confirmed = await connection.read_response()
    except AttributeError as exc:
        # redis-py closes every connection of a node that left the cluster map, in use or
        # not: ours then has no socket left (its writer is None). That node is gone.
        await connection.disconnect()
        raise ConnectionError(f"connection to {node.name} closed under us") from exc
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        node.release(connection)
    return reply, int(confirmed)


class Gone(Enum):
    GONE = "gone"


GONE: Final = Gone.GONE


@functools.lru_cache(maxsize=1024)  # asked on every page view of a quiet topic
def no_history(topic: str) -> str:
    """The epoch of ``topic`` while it has no history yet: its own (so another topic's
    position is not taken for it), and 12 characters long, so never a random epoch's."""
    return "0" + hashlib.sha256(topic.encode()).hexdigest()[:11]


_EPOCH_ALPHABET = string.ascii_lowercase + string.digits


def _script(name: str) -> str:
    return resources.files("livefeed.storage").joinpath(name).read_text()


def new_epoch() -> str:
    return "".join(secrets.choice(_EPOCH_ALPHABET) for _ in range(8))


@dataclass(frozen=True, slots=True)
class Change:
    """The content write that goes with an event, applied in the same atomic step.

    ``op`` is ``create`` (refused if the id was ever used), ``update`` (only if listed),
    ``remove`` (unlist, keep ``record``), ``set`` (``items`` is a plain string key) or
    ``none``.
    """

    op: str
    items: str
    index: str
    id: str = ""
    record: str = ""
    score: int = 0


class Outcome(Enum):
    """Why an append wrote nothing."""

    EXISTS = "exists"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Page:
    """Events of one bounded read of a history, redacted ones left out.

    ``last`` is the position the read reached (the last entry it read, even one left
    out), where the next page starts; ``more`` is True when the history may go on.
    """

    events: list[Event]
    last: EventId
    more: bool


@dataclass(frozen=True, slots=True)
class Listing:
    """A page of stored records with the topic's position, read in one atomic step."""

    records: list[str]
    last_event_id: str


class EventLog:
    """Append, replay and position of every topic's events."""

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        history_size: int,
        *,
        sharded: bool,
        min_replicas: int = 0,
    ) -> None:
        self._redis = redis
        self._min_replicas = min_replicas
        self._publish = "SPUBLISH" if sharded else "PUBLISH"
        self._keys = keys
        self._maxlen = history_size + 1
        self._append = redis.register_script(_script("append_event.lua"))
        self._read_since = redis.register_script(_script("read_since.lua"))
        self._list = redis.register_script(_script("list_items.lua"))
        self._versions = redis.register_script(_script("versions.lua"))

    async def append(
        self, topic: str, event_type: str, data: dict[str, Any], change: Change | None = None
    ) -> EventId | Outcome:
        """Apply ``change``, append the event and publish it, atomically; the event's id."""
        change = change or Change("none", self._keys.log(topic), self._keys.log(topic))
        prefix, suffix = frame_parts(event_type, topic, data)
        about = data.get("id")
        k = self._keys
        # One token per call: redis-py re-sends the same call after a dropped connection,
        # and the script then answers from its first run.
        call = secrets.token_hex(8)
        keys = [
            k.log(topic),
            k.epoch(topic),
            change.items,
            change.index,
            k.answer(topic, call),
            k.redacted(topic),
        ]
        args = [
            k.channel(topic),
            self._maxlen,
            change.op,
            change.id,
            change.record,
            change.score,
            prefix,
            suffix,
            new_epoch(),
            self._publish,
            limits.WRITE_ANSWER_TTL,
            about if isinstance(about, str) else "",
            "hold" if self._min_replicas else "",
        ]
        if self._min_replicas:
            try:
                # Bounded as a whole, like one call: a retry after a moved slot must not
                # keep a writer waiting through a failover.
                async with asyncio.timeout(limits.REDIS_CALL_TIMEOUT + limits.REDIS_WAIT_TIMEOUT):
                    reply = await self._append_replicated(keys, args)
            except TimeoutError as exc:
                raise RedisTimeoutError("no confirmed answer in time") from exc
            if reply[0] == "ok":
                await self._publish_held(k.channel(topic), reply[2])
        else:
            reply = await self._append(keys=keys, args=args)
        if reply[0] != "ok":
            return Outcome(reply[0])
        event_id = EventId.parse(reply[1])
        if event_id is None:
            raise RuntimeError(f"append_event.lua returned a malformed id {reply[1]!r}")
        return event_id

    async def _append_replicated(self, keys: list[str], args: list[Any]) -> Any:
        """The append script then WAIT, on one connection: WAIT counts the replicas that
        have every write of its own connection, so it must follow the write there. It
        follows a refusal too (whose answer key is a write), which covers a first attempt
        that reached the primary but whose confirmation was lost."""
        wait_ms = int(limits.REDIS_WAIT_TIMEOUT * 1000)
        if isinstance(self._redis, RedisCluster):
            call = _Confirmed(self._append.script, keys, args, self._min_replicas, wait_ms)
            reply, confirmed = await _on_one_node(self._redis, call)
        else:
            pipe = self._redis.pipeline(transaction=False)
            await self._append(keys=keys, args=args, client=pipe)  # queued, not sent yet
            pipe.execute_command("WAIT", self._min_replicas, wait_ms)
            reply, confirmed = await pipe.execute()
        if int(confirmed) < self._min_replicas:
            raise NotReplicated(
                f"{confirmed} of {self._min_replicas} replicas confirmed the write in time"
            )
        return reply

    async def _publish_held(self, channel: str, message: str) -> None:
        """Publish a confirmed event's live message. The event is stored and replicated
        whatever happens here: if the message is lost, the hub notices the gap at the
        topic's next event and replays it from the stream."""
        try:
            async with asyncio.timeout(limits.REDIS_CALL_TIMEOUT):
                for attempt in (1, 2):
                    try:
                        await self._redis.execute_command(self._publish, channel, message)
                        return
                    except (RedisError, OSError):
                        if attempt == 2:
                            raise
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("live message on %s not published: %r", channel, exc)

    async def read_since(self, topic: str, since: EventId) -> list[Event] | Gone:
        """Every event after ``since`` in order, or ``GONE`` if not all can be served."""
        events: list[Event] = []
        while True:
            page = await self.read_page(topic, since)
            if page is GONE:
                return GONE
            events += page.events
            if not page.more:
                return events
            since = page.last

    async def read_page(
        self, topic: str, since: EventId, count: int = limits.REPLAY_PAGE
    ) -> Page | Gone:
        """Up to ``count`` entries after ``since``, and about ``REPLAY_PAGE_BYTES`` of frames at
        most (fewer events if some are redacted)."""
        k = self._keys
        reply = await self._read_since(
            keys=[k.log(topic), k.epoch(topic), k.redacted(topic)],
            args=[
                since.epoch,
                since.sequence,
                count,
                no_history(topic),
                limits.REPLAY_PAGE_BYTES,
            ],
        )
        if reply[0] != "ok":
            return GONE
        epoch = reply[1]
        events = []
        for entry_id, fields in reply[2]:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            event_id = EventId.parse(f"{epoch}-{entry_id}")
            if event_id is None:
                raise RuntimeError(f"unexpected stream entry id {entry_id!r} in {topic}")
            frame = values["p"] + str(event_id) + values["s"]
            events.append(Event.from_frame(frame))
        last = EventId.parse(f"{epoch}-{reply[3]}") if reply[3] else since
        if last is None:
            raise RuntimeError(f"unexpected stream entry id {reply[3]!r} in {topic}")
        return Page(events, last, bool(reply[4]))

    async def listing(
        self, topic: str, items: str, index: str, before: str | None, limit: int
    ) -> Listing | None:
        """Up to ``limit`` records newest first (after ``before``), with the topic's position.

        None when ``before`` is not a listed id.
        """
        reply = await self._list(
            keys=[self._keys.log(topic), self._keys.epoch(topic), items, index],
            args=[no_history(topic), before or "", limit],
        )
        if reply[0] != "ok":
            return None
        return Listing(records=list(reply[2:]), last_event_id=reply[1])

    async def versions(self, topics: list[str], keys: list[str]) -> tuple[list[str], list[str]]:
        """The positions of ``topics`` and the values of plain ``keys`` ("" if absent), in
        one round trip, writing nothing. Not one atomic read across shards: fit to tell
        whether anything moved, not to resume from (``position`` and ``listing`` are)."""
        k = self._keys
        if isinstance(self._redis, RedisCluster):
            async with self._redis.pipeline(transaction=False) as pipe:
                for topic in topics:
                    pipe.get(k.epoch(topic))
                    pipe.xrevrange(k.log(topic), "+", "-", count=1)
                for key in keys:
                    pipe.get(key)
                found = await pipe.execute()
            lasts = found[1 : 2 * len(topics) : 2]
            found[1 : 2 * len(topics) : 2] = [last[0][0] if last else "" for last in lasts]
        else:
            pairs = [key for topic in topics for key in (k.epoch(topic), k.log(topic))]
            found = await self._versions(keys=[*pairs, *keys], args=[len(topics)])
        found = [value or "" for value in found]
        positions = [
            f"{found[2 * n] or no_history(topic)}-{found[2 * n + 1] or '0-0'}"
            for n, topic in enumerate(topics)
        ]
        return positions, found[2 * len(topics) :]

    async def position(self, topic: str) -> EventId:
        """The id of the topic's latest event (or its origin when it has none yet).

        A topic that has no history at all is at ``no_history(topic)``'s origin; nothing is written.
        """
        log = self._keys.log(topic)
        listing = await self.listing(topic, log, log, None, 0)
        if listing is None:
            raise RuntimeError("a listing without `before` cannot miss it")
        event_id = EventId.parse(listing.last_event_id)
        if event_id is None:
            raise RuntimeError(f"malformed position {listing.last_event_id!r} for {topic}")
        return event_id
