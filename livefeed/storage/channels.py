"""Channels: the process's Redis pub/sub connections, kept alive and proven to deliver.

A standalone Redis gets one connection. A Redis Cluster gets one per master, each holding
the *sharded* subscriptions (SSUBSCRIBE) of the channels whose slot that master serves, so
an event travels only to the shard of its topic instead of every node; plain channels
(the ingest channel other services PUBLISH to, which a cluster broadcasts) ride on the
first connection.

Contract for the owner (the hub):

- ``on_confirmed(channel)`` is called whenever a channel's subscription is confirmed — the
  first time and again after every reconnect — so the owner can replay what it missed;
  ``on_message(channel, data)`` for each message, raw bytes.
- Each connection publishes a probe on a channel of its own every few seconds; a probe
  that does not come back in time marks the connection silent and starts a new session.
- No read timeout on a subscriber connection: a quiet channel is not a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from livefeed import limits
from livefeed.lifecycle import stop_tasks
from livefeed.storage.connect import connect_pubsub, node_url, primary_address, server_of

logger = logging.getLogger("livefeed.channels")


@dataclass(slots=True, eq=False)
class _Connection:
    """One subscriber connection: its session task, probe channel and subscriptions."""

    owner: Channels
    url: str
    probe_channel: str
    sharded: bool
    pubsub: PubSub | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    session: asyncio.Task[None] | None = None
    healthy: bool = True
    probe_echo: asyncio.Event = field(default_factory=asyncio.Event)
    probe_token: bytes = b""
    started: float = 0.0
    # Why the probe ended the session, for the log ("" : no probe did).
    ended_by_probe: str = ""

    async def subscribe(self, channel: str, sharded: bool) -> None:
        if self.pubsub is None:
            return  # the next session subscribes it
        if sharded and self.sharded:
            await self.pubsub.ssubscribe(channel)
        else:
            await self.pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str, sharded: bool) -> None:
        if self.pubsub is None:
            return
        if sharded and self.sharded:
            await self.pubsub.sunsubscribe(channel)
        else:
            await self.pubsub.unsubscribe(channel)

    async def run(self) -> None:
        """Keep a session alive: reconnect with capped, jittered backoff."""
        backoff = limits.PUBSUB_RECONNECT_BACKOFF_MIN
        first = True
        while True:
            if self.sharded and not first:
                # A cluster master that fails over hands its slots to a replica elsewhere:
                # follow them to whichever node serves them now.
                with contextlib.suppress(RedisError, OSError):
                    await self.owner.follow_slots(self)
            first = False
            self.session = asyncio.create_task(self._session(), name="livefeed-pubsub")
            try:
                # wait() rather than await: a session cancelled by the probe is not our
                # own cancellation.
                await asyncio.wait({self.session})
            except asyncio.CancelledError:
                self.session.cancel()
                raise
            if self.session.cancelled():
                reason, self.ended_by_probe = self.ended_by_probe, ""
            else:
                exc = self.session.exception()
                if exc is not None and not isinstance(exc, (RedisError, OSError)):
                    raise exc  # a bug, not Redis trouble
                reason = str(exc)
            self.owner.reconnects += 1
            delay = random.uniform(0, backoff)
            logger.warning(
                "lost the Redis pub/sub connection (%s); retrying in %.1fs", reason, delay
            )
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, limits.PUBSUB_RECONNECT_BACKOFF_MAX)

    async def _session(self) -> None:
        redis = connect_pubsub(self.url)
        pubsub = redis.pubsub()
        try:
            # Our probe channel keeps the connection subscribed even with no topics, so
            # the reader never sees an unsubscribed connection (redis-py ends those).
            if self.sharded:
                await pubsub.ssubscribe(self.probe_channel)
            else:
                await pubsub.subscribe(self.probe_channel)
            for channel, sharded in self.owner.channels_of(self):
                if sharded and self.sharded:
                    await pubsub.ssubscribe(channel)
                else:
                    await pubsub.subscribe(channel)
            self.pubsub = pubsub
            self.started = asyncio.get_running_loop().time()
            # Connected (and healthy) only once Redis confirms the probe subscription: a
            # connection that swallows what we send is not one.
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    self._dispatch(message)
        finally:
            self.connected.clear()
            self.pubsub = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await redis.aclose()

    def _dispatch(self, message: dict[str, object]) -> None:
        kind, raw, data = message.get("type"), message.get("channel"), message.get("data")
        if not isinstance(raw, bytes):
            return
        channel = raw.decode("utf-8", "replace")
        if channel == self.probe_channel:
            if kind in ("message", "smessage") and data == self.probe_token:
                self.probe_echo.set()
            elif kind in ("subscribe", "ssubscribe"):
                self.healthy = True
                self.connected.set()
        elif kind in ("message", "smessage") and isinstance(data, bytes):
            self.owner.on_message(channel, data)
        elif kind in ("subscribe", "ssubscribe"):
            self.owner.on_confirmed(channel)

    async def probe(self, sequence: int) -> None:
        """Prove the subscription delivers; start a new session if it does not."""
        if not self.connected.is_set():
            waited = asyncio.get_running_loop().time() - self.started
            if self.pubsub is not None and waited > limits.PUBSUB_PROBE_TIMEOUT:
                # Subscribed long ago and never confirmed: as deaf as a lost probe.
                self.owner.silent += 1
                logger.warning("pub/sub subscription never confirmed: reconnecting")
                self._end_session("never confirmed")
            return
        primary = await self.owner.primary()
        here = server_of(self.pubsub) if self.pubsub is not None else None
        if primary is not None and here is not None and here != primary:
            # A former primary that is still up (failed over while alive, or too slow for
            # the sentinels) keeps its clients until the sentinels demote it, which takes
            # them 10-30 s; it even echoes our probe, yet hears nothing published on the
            # new one. Move now; the new session replays what we missed.
            logger.warning(
                "pub/sub on %s:%d, no longer the primary (now %s:%d): moving",
                *here,
                *primary,
            )
            self._end_session("on a former primary")
            return
        token = str(sequence).encode()
        self.probe_echo = asyncio.Event()
        self.probe_token = token
        try:
            await asyncio.wait_for(
                self.owner.publish(self.probe_channel, token, self.sharded),
                limits.REDIS_CALL_TIMEOUT,
            )
            await asyncio.wait_for(self.probe_echo.wait(), limits.PUBSUB_PROBE_TIMEOUT)
            self.healthy = True
        except (RedisError, OSError, TimeoutError) as exc:
            self.owner.silent += 1
            logger.warning("pub/sub probe failed (%s): reconnecting", type(exc).__name__)
            self._end_session("silent (no probe echo)")

    def _end_session(self, reason: str) -> None:
        self.healthy = False
        self.ended_by_probe = reason
        if self.session is not None:
            self.session.cancel()


class Channels:
    """Subscriptions of one process, spread over its pub/sub connections."""

    def __init__(
        self,
        url: str,
        publisher: Redis | RedisCluster,
        prefix: str,
        on_message: Callable[[str, bytes], None],
        on_confirmed: Callable[[str], None],
    ) -> None:
        self._url = url
        self._publisher = publisher
        self._prefix = prefix
        self.on_message = on_message
        self.on_confirmed = on_confirmed
        self._channels: dict[str, bool] = {}  # channel -> sharded
        self._connections: list[_Connection] = []
        self._slots: list[tuple[int, int, _Connection]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnects = 0
        self.silent = 0
        self.failovers = 0

    @property
    def is_connected(self) -> bool:
        return bool(self._connections) and all(c.connected.is_set() for c in self._connections)

    @property
    def is_ready(self) -> bool:
        """Every connection subscribed, and its last probe came back."""
        return self.is_connected and all(c.healthy for c in self._connections)

    async def start(self) -> None:
        token = secrets.token_hex(6)
        if isinstance(self._publisher, RedisCluster):
            await self._publisher.initialize()
            for index, (low, high, node_host, node_port) in enumerate(await self._shards()):
                tag = _tag_in_slots(low, high)
                probe = f"{self._prefix}{{{tag}}}:hub:{token}:{index}"
                connection = _Connection(
                    self, node_url(self._url, node_host, node_port), probe, True
                )
                self._connections.append(connection)
                self._slots.append((low, high, connection))
        else:
            probe = f"{self._prefix}hub:{token}"
            self._connections.append(_Connection(self, self._url, probe, False))
        for connection in self._connections:
            self._tasks.append(asyncio.create_task(connection.run(), name="livefeed-channels"))
        self._tasks.append(asyncio.create_task(self._probe(), name="livefeed-probe"))

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(c.connected.wait() for c in self._connections)), timeout
        )

    async def stop(self) -> None:
        await stop_tasks([*self._tasks, *(c.session for c in self._connections if c.session)])

    async def add(self, channel: str, *, sharded: bool) -> None:
        """Subscribe ``channel`` now (or with the first session, before ``start``)."""
        self._channels[channel] = sharded
        if self._connections:
            await self._connection_of(channel, sharded).subscribe(channel, sharded)

    async def remove(self, channel: str) -> None:
        sharded = self._channels.pop(channel, None)
        if sharded is not None and self._connections:
            await self._connection_of(channel, sharded).unsubscribe(channel, sharded)

    async def follow_slots(self, connection: _Connection) -> None:
        """Point ``connection`` at the master now serving its slots (after a failover)."""
        if not isinstance(self._publisher, RedisCluster):
            return
        low = next(lo for lo, _, c in self._slots if c is connection)
        for first, last, host, port in await self._shards():
            if first <= low <= last:
                url = node_url(self._url, host, port)
                if url != connection.url:
                    logger.warning("cluster slots %d-%d moved to %s:%d", first, last, host, port)
                    connection.url = url
                    self.failovers += 1
                return

    def channels_of(self, connection: _Connection) -> list[tuple[str, bool]]:
        return [
            (c, s) for c, s in self._channels.items() if self._connection_of(c, s) is connection
        ]

    async def primary(self) -> tuple[str, int] | None:
        """Where the sentinels say the primary is now (Sentinel only; None if they do not
        answer in time: the probe alone then judges the connection)."""
        try:
            return await asyncio.wait_for(
                primary_address(self._publisher), limits.REDIS_CALL_TIMEOUT
            )
        except (RedisError, OSError, TimeoutError):
            return None

    async def publish(self, channel: str, data: bytes, sharded: bool) -> None:
        if sharded:
            await self._publisher.execute_command("SPUBLISH", channel, data)
        else:
            await self._publisher.publish(channel, data)

    def _connection_of(self, channel: str, sharded: bool) -> _Connection:
        if not sharded or not self._slots:
            return self._connections[0]
        slot = key_slot(channel.encode())
        for low, high, connection in self._slots:
            if low <= slot <= high:
                return connection
        raise RuntimeError(f"no cluster node serves slot {slot} of {channel!r}")

    async def _shards(self) -> list[tuple[int, int, str, int]]:
        """(first slot, last slot, host, port) of every master's slot range."""
        # redis-py answers CLUSTER SLOTS as {(first, last): {"primary": (host, port), ...}}.
        reply: Any = await self._publisher.execute_command("CLUSTER SLOTS")
        shards = []
        for (low, high), nodes in reply.items():
            host, port = nodes["primary"][:2]
            host = host.decode() if isinstance(host, bytes) else host
            shards.append((int(low), int(high), host, int(port)))
        return sorted(shards)

    async def _probe(self) -> None:
        sequence = 0
        while True:
            await asyncio.sleep(limits.PUBSUB_PROBE_INTERVAL)
            sequence += 1
            await asyncio.gather(*(c.probe(sequence) for c in self._connections))


def _tag_in_slots(low: int, high: int) -> str:
    """A hash tag whose slot lies in ``low..high``, to pin a probe channel to one master."""
    for n in range(100_000):
        if low <= key_slot(str(n).encode()) <= high:
            return str(n)
    raise RuntimeError(f"no hash tag found for slots {low}-{high}")
