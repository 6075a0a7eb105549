"""Subscription: one reader's topics, its bounded send queue and its resume logic.

Both transports (WebSocket and SSE) wrap one Subscription; a writer task drains
``next()`` to the client. The hub calls ``deliver`` synchronously; if the reader is too
slow and its queue fills up, the subscription is marked ``overflowed`` and the transport
closes it (1013 on a WebSocket) so the reader resumes later from its last id instead of
the server buffering without bound.

A transport that can write synchronously sets ``sink``: while nothing is queued, each
frame is offered to the sink first and is queued only if the sink refuses it (its socket
is pushing back). Since a frame is only offered while the queue is empty, and the writer
drains the queue in order, frames leave in the order they were put, each once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from livefeed import limits
from livefeed.errors import TooManySubscriptions, Unavailable
from livefeed.events import Event, EventId, subscribed_frame
from livefeed.fanout.hub import Hub, is_after
from livefeed.storage.eventlog import GONE, EventLog

logger = logging.getLogger("livefeed.subscription")

# What a writer sends: an event, or a control frame already encoded.
Outgoing = Event | str
# Writes a frame now and returns True, or returns False (it must then be queued).
Sink = Callable[[Outgoing], bool]
# Writes several events' frames now, in one write, and returns True; or returns False.
EventsSink = Callable[[list[Event]], bool]


@dataclass(slots=True, eq=False)
class _Follow:
    # Live events wait here while the topic's missed events are replayed.
    buffer: list[Event] | None = field(default_factory=list)
    # After a replay, the last id it sent: the hub may still hand over live events the
    # replay already read from the stream (their pub/sub message can lag the read).
    floor: EventId | None = None


class Subscription:
    """One reader's view of the live feed."""

    __slots__ = (
        "_follows",
        "_hub",
        "_log",
        "_overflow_event",
        "_overflowed",
        "_queue",
        "_queue_bytes",
        "_queued_bytes",
        "_waiter",
        "events_sink",
        "on_overflow",
        "sink",
    )

    def __init__(self, hub: Hub, log: EventLog, queue_bytes: int = limits.SEND_QUEUE_BYTES) -> None:
        self._hub = hub
        self._log = log
        self._follows: dict[str, _Follow] = {}
        # Only frames that must wait are queued; the queue and the writer's waiter exist
        # only while needed, so an idle reader holds as few objects as possible.
        self._queue: deque[Outgoing] | None = None
        self._queued_bytes = 0
        self._queue_bytes = queue_bytes
        self._waiter: asyncio.Future[None] | None = None
        self._overflowed = False
        self._overflow_event: asyncio.Event | None = None
        self.sink: Sink | None = None
        self.events_sink: EventsSink | None = None
        self.on_overflow: Callable[[], None] | None = None

    @property
    def overflowed(self) -> asyncio.Event:
        """Set once the reader fell too far behind and was dropped."""
        if self._overflow_event is None:
            self._overflow_event = asyncio.Event()
            if self._overflowed:
                self._overflow_event.set()
        return self._overflow_event

    @property
    def topics(self) -> list[str]:
        return list(self._follows)

    async def subscribe(self, topic: str, since: str | None) -> bool:
        """Follow ``topic``: replay what came after ``since``, then ``subscribed``, then live.

        Returns ``recovered``: False when ``since`` could not be served.

        Joins the live topic first and buffers it while reading the history, then merges by
        id, so an event published during the replay arrives exactly once.
        """
        if topic in self._follows:
            self.unsubscribe(topic)
        if len(self._follows) >= limits.SUBSCRIPTIONS_MAX:
            raise TooManySubscriptions(f"at most {limits.SUBSCRIPTIONS_MAX} topics per connection")
        follow = self._follows[topic] = _Follow()
        try:
            if not self._hub.join_now(topic, self):
                async with asyncio.timeout(limits.REDIS_CALL_TIMEOUT):  # no task, unlike wait_for
                    await self._hub.join(topic, self)
            recovered, last = await self._replay(topic, since, follow)
        except (TimeoutError, RedisError, OSError) as exc:
            self._forget(topic, follow)
            raise Unavailable(f"cannot subscribe to {topic} right now, try again") from exc
        except BaseException:
            self._forget(topic, follow)
            raise
        if self._follows.get(topic) is not follow:
            return recovered  # unsubscribed (or dropped as too slow) while replaying
        for event in follow.buffer or ():
            if last is None or is_after(event.id, last):
                self._put(event)
                last = event.id
        follow.buffer = None
        follow.floor = last
        self._put(subscribed_frame(topic, recovered=recovered))
        return recovered

    async def _replay(
        self, topic: str, since: str | None, follow: _Follow
    ) -> tuple[bool, EventId | None]:
        """Queue the events after ``since`` a page at a time; whether they are complete, and
        the position the replay reached.

        Reading stops as soon as the reader's queue bound is hit (it is then dropped as too
        slow): one subscribe never pulls more out of Redis than the reader can hold.
        """
        if since is None:
            return True, None
        position = EventId.parse(since)
        if position is None:
            return False, None
        while True:
            page = await self._log.read_page(topic, position)
            if page is GONE:
                return False, None
            if self._follows.get(topic) is not follow:
                return True, position
            for event in page.events:
                self._put(event)
            position = page.last
            if not page.more or self._overflowed:
                return True, position

    async def position(self, topic: str) -> str:
        """The topic's latest event id: where a reader starting now stands."""
        try:
            return str(await asyncio.wait_for(self._log.position(topic), limits.REDIS_CALL_TIMEOUT))
        except (TimeoutError, RedisError, OSError) as exc:
            raise Unavailable(f"cannot read {topic} right now, try again") from exc

    def unsubscribe(self, topic: str) -> bool:
        """Stop following ``topic``; False if it was not followed."""
        follow = self._follows.get(topic)
        if follow is None:
            return False
        self._forget(topic, follow)
        return True

    def _forget(self, topic: str, follow: _Follow) -> None:
        if self._follows.get(topic) is follow:
            del self._follows[topic]
            self._hub.leave(topic, self)

    def close(self) -> None:
        """Leave every topic; the reader is gone."""
        for topic in list(self._follows):
            self.unsubscribe(topic)

    def send(self, frame: str) -> None:
        """Queue a control frame (pong, error, unsubscribed) behind the events."""
        self._put(frame)

    async def next(self) -> Outgoing:
        """The next frame to write; waits for one."""
        await self.pending()
        return self.pop()

    async def pending(self) -> None:
        """Wait until a frame is queued."""
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    @property
    def has_pending(self) -> bool:
        return bool(self._queue)

    def pop(self) -> Outgoing:
        """The oldest queued frame (there must be one)."""
        queue = self._queue
        assert queue
        item = queue.popleft()
        self._queued_bytes -= _size(item)
        if not queue:
            self._queue = None
        return item

    # -- called by the hub ----------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        follow = self._follows.get(event.topic)
        if follow is None:
            return
        if follow.buffer is not None:
            follow.buffer.append(event)
            return
        if follow.floor is not None:
            if not is_after(event.id, follow.floor):
                return  # already sent by the replay
            follow.floor = None  # live has overtaken the replay: no more checks
        self._put(event)

    def deliver_all(self, events: list[Event]) -> None:
        """Several events of one topic, in order: in one write when the reader is simply
        following live (nothing queued, no replay to merge), else one by one."""
        follow = self._follows.get(events[0].topic)
        if follow is None:
            return
        if (
            follow.buffer is None
            and follow.floor is None
            and self._queue is None
            and not self._overflowed
            and self.events_sink is not None
            and self.events_sink(events)
        ):
            return
        for event in events:
            self.deliver(event)

    def lost(self, topic: str) -> None:
        """The hub could not replay a gap: the reader must refetch this topic."""
        if topic in self._follows:
            self._put(subscribed_frame(topic, recovered=False))

    def _put(self, item: Outgoing) -> None:
        if self._overflowed:
            return  # nothing after a dropped frame: the reader resumes from its last id
        queue = self._queue
        if queue is None and self.sink is not None and self.sink(item):
            return
        size = _size(item)
        if self._queued_bytes + size > self._queue_bytes:
            logger.info(
                "reader too slow (%d frames, %d bytes queued): disconnecting",
                len(queue or ()),
                self._queued_bytes,
            )
            self._overflowed = True
            if self._overflow_event is not None:
                self._overflow_event.set()
            self.close()
            if self.on_overflow is not None:
                self.on_overflow()
            return
        if queue is None:
            queue = self._queue = deque()
        queue.append(item)
        self._queued_bytes += size
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _size(item: Outgoing) -> int:
    # Characters, not UTF-8 bytes: close enough for a bound, and free to compute.
    return len(item.frame) if isinstance(item, Event) else len(item)
