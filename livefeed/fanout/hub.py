"""The hub: one Redis pub/sub connection per process (one per master of a cluster), fanning
each event out to local readers.

Contract:

- A topic's channel is subscribed while at least one local listener wants it.
- Listeners of a topic get its events in order, each once, as one shared ``Event`` whose
  frame was encoded once by the publisher; the hub never encodes per listener.
- The hub keeps, per topic, the id of the last event it delivered (its cursor). Whenever a
  channel is (re)subscribed — the first time, or after the connection dropped — the hub
  buffers live messages, replays the stream from the cursor, then flushes the buffer, so
  no listener misses an event and none gets one twice. If the history no longer covers the
  cursor, listeners are told the topic is ``lost`` (they answer ``recovered: false``).
- ``deliver``, ``deliver_all`` and ``lost`` are called synchronously on the event loop and
  must not block.
- A topic's events are handed out once per turn of the event loop: when the process falls
  behind, the events that arrived meanwhile go to each listener together
  (``deliver_all``, one list shared by all of them), so a reader's socket gets them in one
  write. Under load that halves the system calls of the fan-out just when it matters; an
  idle process still delivers each event within the turn it arrived in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, overload

from redis.exceptions import RedisError

from livefeed import limits
from livefeed.events import Event, EventId, parse_live_message
from livefeed.lifecycle import stop_tasks
from livefeed.storage.channels import Channels
from livefeed.storage.connect import Client, failovers_seen
from livefeed.storage.eventlog import GONE, EventLog, Gone, no_history
from livefeed.storage.keys import Keys

logger = logging.getLogger("livefeed.hub")

T = TypeVar("T")


class Listener(Protocol):
    """What the hub delivers to: a reader's subscription."""

    def deliver(self, event: Event) -> None: ...

    def deliver_all(self, events: list[Event]) -> None:
        """Several events of one topic, in order; the same list goes to every listener."""

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
    # Events to hand out at the end of this turn of the loop (see the module's contract).
    due: list[Event] | None = None


def is_after(event_id: EventId, cursor: EventId) -> bool:
    """True if ``event_id`` comes after ``cursor`` (a new epoch always does)."""
    return event_id.epoch != cursor.epoch or (event_id.ms, event_id.seq) > (cursor.ms, cursor.seq)


class _OfChannels(Generic[T]):
    """A read-only hub attribute that is its ``Channels``' attribute of the same name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type[Hub], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, hub: None, owner: type[Hub]) -> _OfChannels[T]: ...

    @overload
    def __get__(self, hub: Hub, owner: type[Hub] | None = None) -> T: ...

    def __get__(self, hub: Hub | None, owner: type[Hub] | None = None) -> T | _OfChannels[T]:
        if hub is None:
            return self  # looked up on the class (help(), documentation tools)
        value: T = getattr(hub._channels, self._name)
        return value


class Hub:
    """Owns the process's pub/sub subscriptions and the set of topics its readers follow."""

    def __init__(self, url: str, publisher: Client, log: EventLog, keys: Keys) -> None:
        self._log = log
        self._publisher = publisher
        self._keys = keys
        self._topics: dict[str, _Topic] = {}
        self._callbacks: dict[str, Callable[[bytes], None]] = {}
        self._channels = Channels(url, publisher, keys.prefix, self._on_message, self._on_confirmed)
        self._tasks: set[asyncio.Future[None]] = set()
        self._due: list[_Topic] = []  # topics with events to hand out, first come first
        self.gaps = 0
        self.gathered = 0  # events handed out together with others: the process was busy

    # The state of the pub/sub connections, as the hub's: for health checks and /metrics.
    is_connected = _OfChannels[bool]("at least one pub/sub connection is up")
    is_ready = _OfChannels[bool]("subscribed, and the last probe proved the subscriptions deliver")
    reconnects = _OfChannels[int]("pub/sub reconnections so far")
    silent = _OfChannels[int]("probes that did not come back in time")

    @property
    def failovers(self) -> int:
        """Times the primary moved (Sentinel) or a cluster shard's master changed."""
        return failovers_seen(self._publisher) + self._channels.failovers

    def topics(self) -> dict[str, int]:
        """Local listener count per followed topic."""
        return {name: len(t.listeners) for name, t in self._topics.items()}

    async def start(self) -> None:
        await self._channels.start()
        try:
            await self._channels.wait_connected(limits.REDIS_CONNECT_TIMEOUT * 4)
        except TimeoutError:
            await self._channels.stop()
            raise TimeoutError("the hub could not subscribe to Redis pub/sub in time") from None

    async def stop(self) -> None:
        await stop_tasks(list(self._tasks))
        await self._channels.stop()
        for topic in self._topics.values():
            if not topic.ready.done():
                topic.ready.cancel()
        self._topics.clear()

    async def listen(self, channel: str, callback: Callable[[bytes], None]) -> None:
        """Also pass every message of a plain channel (not a topic) to ``callback``.

        The callback runs on the event loop and must not block; it gets the raw bytes.
        """
        self._callbacks[channel] = callback
        await self._channels.add(channel, sharded=False)

    def join_now(self, name: str, listener: Listener) -> bool:
        """Join a topic that is live already, without waiting (most readers' case): whether
        it could; if not, ``join``."""
        topic = self._topics.get(name)
        if topic is None or not topic.ready.done() or topic.ready.cancelled():
            return False
        topic.listeners.add(listener)
        return True

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
        try:
            await self._channels.add(self._keys.channel(name), sharded=True)
        except (RedisError, OSError) as exc:
            # The next session subscribes every followed topic again.
            logger.warning("subscribe to %s failed (%s); will retry on reconnect", name, exc)

    async def _unsubscribe(self, name: str) -> None:
        if name not in self._topics:
            with contextlib.suppress(RedisError, OSError):
                await self._channels.remove(self._keys.channel(name))

    def _track(self, task: asyncio.Future[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_confirmed(self, channel: str) -> None:
        name = self._keys.topic_of_channel(channel)
        topic = self._topics.get(name) if name is not None else None
        if name is None or topic is None:
            return
        # A (re)subscription: anything published while we were not subscribed is in the
        # stream, after the cursor.
        if topic.buffer is None:
            topic.buffer = []
        self._start_replay(name, topic)

    def _on_message(self, channel: str, data: bytes) -> None:
        callback = self._callbacks.get(channel)
        if callback is not None:
            callback(data)
            return
        name = self._keys.topic_of_channel(channel)
        topic = self._topics.get(name) if name is not None else None
        if name is None or topic is None:
            return
        try:
            prev, event = parse_live_message(data)
        except (ValueError, TypeError) as exc:
            logger.error("dropped a malformed message on %s: %s", channel, exc)
            return
        if topic.buffer is not None:
            topic.buffer.append(event)
        elif (
            prev == topic.cursor
            or not is_after(event.id, topic.cursor)
            or (prev.is_origin and topic.cursor.epoch == no_history(name))
        ):
            # The next one (or the first of a history that began after the cursor was
            # read), or one already delivered.
            self._fan_out(topic, event)
        else:
            # A gap: an event between our cursor and this one never reached us.
            logger.warning("gap in %s before %s: replaying from %s", name, event.id, topic.cursor)
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
                self._hand_out(topic)  # what came before the loss, before the loss
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
        if topic.due is not None:
            topic.due.append(event)
            return
        topic.due = [event]
        if not self._due:
            asyncio.get_running_loop().call_soon(self._hand_out_all)
        self._due.append(topic)

    def _hand_out_all(self) -> None:
        due, self._due = self._due, []
        for topic in due:
            self._hand_out(topic)

    def _hand_out(self, topic: _Topic) -> None:
        events, topic.due = topic.due, None
        if not events:
            return
        if len(events) == 1:
            event = events[0]
            for listener in list(topic.listeners):
                listener.deliver(event)
        else:
            self.gathered += len(events)
            for listener in list(topic.listeners):
                listener.deliver_all(events)
