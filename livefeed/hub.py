"""The hub: one Redis pub/sub connection per process, fanning each event out to local readers.

Contract:

- A topic's channel is subscribed while at least one local listener wants it.
- Listeners of a topic get its events in order, each once, as one shared ``Event`` whose
  frame was encoded once by the publisher; the hub never encodes per listener.
- The hub keeps, per topic, the id of the last event it delivered (its cursor). Whenever a
  channel is (re)subscribed — the first time, or after the connection dropped — the hub
  buffers live messages, replays the stream from the cursor, then flushes the buffer, so
  no listener misses an event and none gets one twice. If the history no longer covers the
  cursor, listeners are told the topic is ``lost`` (they answer ``recovered: false``).
- ``deliver`` and ``lost`` are called synchronously on the event loop and must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from livefeed import limits
from livefeed.events import Event, EventId, parse_live_message
from livefeed.storage.eventlog import GONE, EventLog, Gone
from livefeed.storage.keys import Keys

logger = logging.getLogger("livefeed.hub")

T = TypeVar("T")


class Listener(Protocol):
    """What the hub delivers to: a reader's subscription."""

    def deliver(self, event: Event) -> None: ...

    def lost(self, topic: str) -> None: ...


@dataclass(slots=True, eq=False)
class _Topic:
    cursor: EventId
    listeners: set[Listener] = field(default_factory=set)
    # While not None, live messages wait here until the replay from `cursor` is done.
    buffer: list[Event] | None = field(default_factory=list)
    ready: asyncio.Future[None] = field(default_factory=asyncio.Future)
    resubscribed: bool = False
    replay: asyncio.Task[None] | None = None


def is_after(event_id: EventId, cursor: EventId) -> bool:
    """True if ``event_id`` comes after ``cursor`` (a new epoch always does)."""
    return event_id.epoch != cursor.epoch or (event_id.ms, event_id.seq) > (cursor.ms, cursor.seq)


class Hub:
    """Owns the process's pub/sub connection and the set of topics its readers follow."""

    def __init__(
        self, connect_pubsub: Callable[[], Redis], publisher: Redis, log: EventLog, keys: Keys
    ) -> None:
        self._connect = connect_pubsub
        self._publisher = publisher
        self._log = log
        self._keys = keys
        self._topics: dict[str, _Topic] = {}
        self._channels: dict[str, Callable[[bytes], None]] = {}
        self._pubsub: PubSub | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        # A channel of our own keeps the connection subscribed even with no topics, so the
        # reader loop never sees an unsubscribed connection (redis-py ends listeners then).
        self._own_channel = f"{keys.prefix}hub:{secrets.token_hex(8)}"
        self._session: asyncio.Task[None] | None = None
        self._was_connected = False
        self._probe_echo = asyncio.Event()
        self._probe_token = b""
        self.reconnects = 0
        self.gaps = 0
        self.silent = 0  # probes that did not come back
        self.healthy = True  # the last probe came back

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def is_ready(self) -> bool:
        """Subscribed, and the last probe proved the subscription delivers."""
        return self._connected.is_set() and self.healthy

    def topics(self) -> dict[str, int]:
        """Local listener count per followed topic."""
        return {name: len(t.listeners) for name, t in self._topics.items()}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livefeed-hub")
        self._track(asyncio.create_task(self._probe(), name="livefeed-hub-probe"))
        connected = asyncio.ensure_future(self._connected.wait())
        await asyncio.wait(
            {self._task, connected},
            timeout=limits.REDIS_CONNECT_TIMEOUT * 2,
            return_when=asyncio.FIRST_COMPLETED,
        )
        connected.cancel()
        if self._task.done():
            self._task.result()  # raises what ended the loop
        if not self._connected.is_set():
            raise TimeoutError("the hub could not subscribe to Redis pub/sub in time")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._session, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for topic in self._topics.values():
            if not topic.ready.done():
                topic.ready.cancel()
        self._topics.clear()

    async def listen(self, channel: str, callback: Callable[[bytes], None]) -> None:
        """Also pass every message of a plain channel (not a topic) to ``callback``.

        The callback runs on the event loop and must not block; it gets the raw bytes.
        """
        self._channels[channel] = callback
        if self._pubsub is not None:
            await self._pubsub.subscribe(channel)

    async def join(self, name: str, listener: Listener) -> None:
        """Start delivering ``name``'s events to ``listener``; returns once the topic is live."""
        topic = self._topics.get(name)
        if topic is None:
            # The cursor is read before subscribing: whatever is published after it is
            # either received live or replayed, never lost between the two.
            cursor = await self._log.position(name)
            topic = self._topics.get(name)  # another join may have won meanwhile
            if topic is None:
                topic = self._topics[name] = _Topic(cursor)
                await self._subscribe(name)
        topic.listeners.add(listener)
        try:
            await asyncio.shield(topic.ready)
        except BaseException:
            self.leave(name, listener)
            raise

    def leave(self, name: str, listener: Listener) -> None:
        topic = self._topics.get(name)
        if topic is None:
            return
        topic.listeners.discard(listener)
        if not topic.listeners:
            del self._topics[name]
            if not topic.ready.done():
                topic.ready.cancel()
            self._track(asyncio.ensure_future(self._unsubscribe(name)))

    async def _subscribe(self, name: str) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.subscribe(self._keys.channel(name))
            except (RedisError, OSError) as exc:
                # The reader loop reconnects and subscribes every followed topic again.
                logger.warning("subscribe to %s failed (%s); will retry on reconnect", name, exc)

    async def _unsubscribe(self, name: str) -> None:
        if self._pubsub is not None and name not in self._topics:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(self._keys.channel(name))

    def _track(self, task: asyncio.Future[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the reader loop ------------------------------------------------------------------

    async def _run(self) -> None:
        """Keep one pub/sub session alive: reconnect with capped, jittered backoff."""
        backoff = limits.PUBSUB_RECONNECT_BACKOFF_MIN
        while True:
            self._session = asyncio.create_task(self._subscribe_and_read(), name="livefeed-pubsub")
            try:
                # wait() rather than await: a session cancelled by the probe is not our
                # own cancellation.
                await asyncio.wait({self._session})
            except asyncio.CancelledError:
                self._session.cancel()
                raise
            if self._session.cancelled():
                reason = "silent (no probe echo)"
            else:
                exc = self._session.exception()
                if exc is not None and not isinstance(exc, (RedisError, OSError)):
                    raise exc  # a bug, not Redis trouble
                reason = str(exc)
            self.reconnects += 1
            if self._was_connected:
                backoff = limits.PUBSUB_RECONNECT_BACKOFF_MIN
            delay = random.uniform(0, backoff)
            logger.warning(
                "lost the Redis pub/sub connection (%s); retrying in %.1fs", reason, delay
            )
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, limits.PUBSUB_RECONNECT_BACKOFF_MAX)

    async def _subscribe_and_read(self) -> None:
        redis = self._connect()
        pubsub = redis.pubsub()
        self._was_connected = False
        try:
            await pubsub.subscribe(self._own_channel, *self._channels)
            for name in list(self._topics):
                await pubsub.subscribe(self._keys.channel(name))
            self._pubsub = pubsub
            self.healthy = True  # the subscriptions were just confirmed
            self._connected.set()
            self._was_connected = True
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    self._on_message(message)
        finally:
            self._connected.clear()
            self._pubsub = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await redis.aclose()

    async def _probe(self) -> None:
        """Publish a probe on our own channel now and then; if it does not come back, the
        subscription is open but deaf: mark the hub unhealthy and start a new session
        (which replays whatever was missed)."""
        sequence = 0
        while True:
            await asyncio.sleep(limits.PUBSUB_PROBE_INTERVAL)
            if not self._connected.is_set():
                continue
            sequence += 1
            token = str(sequence).encode()
            self._probe_echo = asyncio.Event()
            self._probe_token = token
            try:
                await asyncio.wait_for(
                    self._publisher.publish(self._own_channel, token), limits.REDIS_CALL_TIMEOUT
                )
                await asyncio.wait_for(self._probe_echo.wait(), limits.PUBSUB_PROBE_TIMEOUT)
                self.healthy = True
            except (RedisError, OSError, TimeoutError) as exc:
                self.healthy = False
                self.silent += 1
                logger.warning("pub/sub probe failed (%s): reconnecting", type(exc).__name__)
                if self._session is not None:
                    self._session.cancel()

    def _on_message(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        raw_channel, data = message.get("channel"), message.get("data")
        if not isinstance(raw_channel, bytes):
            return
        channel = raw_channel.decode("utf-8", "replace")
        if channel == self._own_channel:
            if kind == "message" and data == self._probe_token:
                self._probe_echo.set()
            return
        callback = self._channels.get(channel)
        if callback is not None:
            if kind == "message" and isinstance(data, bytes):
                callback(data)
            return
        name = self._keys.topic_of_channel(channel)
        topic = self._topics.get(name) if name is not None else None
        if name is None or topic is None:
            return
        if kind == "subscribe":
            # A (re)subscription: anything published while we were not subscribed is in the
            # stream, after the cursor.
            if topic.buffer is None:
                topic.buffer = []
            self._start_replay(name, topic)
        elif kind == "message" and isinstance(data, bytes):
            try:
                prev, event = parse_live_message(data)
            except (ValueError, TypeError) as exc:
                logger.error("dropped a malformed message on %s: %s", channel, exc)
                return
            if topic.buffer is not None:
                topic.buffer.append(event)
            elif prev == topic.cursor or not is_after(event.id, topic.cursor):
                self._fan_out(topic, event)  # the next one, or one already delivered
            else:
                # A gap: an event between our cursor and this one never reached us.
                logger.warning(
                    "gap in %s before %s: replaying from %s", name, event.id, topic.cursor
                )
                self.gaps += 1
                topic.buffer = [event]
                self._start_replay(name, topic)

    def _start_replay(self, name: str, topic: _Topic) -> None:
        topic.resubscribed = True
        if topic.replay is None:
            topic.replay = asyncio.ensure_future(self._replay(name, topic))
            self._track(topic.replay)

    async def _replay(self, name: str, topic: _Topic) -> None:
        """Replay ``name`` from its cursor while live messages wait in the buffer."""
        while topic.resubscribed:
            # A subscription confirmed during the read may have followed a gap the read did
            # not see, so read again until none did.
            topic.resubscribed = False
            missed = await self._read_with_retry(name, topic.cursor)
            if self._topics.get(name) is not topic:
                return  # everyone left meanwhile
            if missed is GONE:
                logger.warning(
                    "history of %s no longer covers %s: readers refetch", name, topic.cursor
                )
                topic.cursor = await self._retry(lambda: self._log.position(name))
                for listener in list(topic.listeners):
                    listener.lost(name)
                continue
            for event in missed:
                self._fan_out(topic, event)
        buffered, topic.buffer = topic.buffer or [], None
        topic.replay = None
        for event in buffered:
            self._fan_out(topic, event)
        if not topic.ready.done():
            topic.ready.set_result(None)

    async def _read_with_retry(self, name: str, cursor: EventId) -> list[Event] | Gone:
        return await self._retry(lambda: self._log.read_since(name, cursor))

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        backoff = limits.PUBSUB_RECONNECT_BACKOFF_MIN
        while True:
            try:
                return await call()
            except (RedisError, OSError) as exc:
                logger.warning("Redis read for a replay failed (%s); retrying", exc)
                await asyncio.sleep(random.uniform(0, backoff))
                backoff = min(backoff * 2, limits.PUBSUB_RECONNECT_BACKOFF_MAX)

    def _fan_out(self, topic: _Topic, event: Event) -> None:
        if not is_after(event.id, topic.cursor):
            return  # already delivered (replay and live overlapped)
        topic.cursor = event.id
        for listener in list(topic.listeners):
            listener.deliver(event)
