"""Subscription's ordering contract: frames written at once through the sink and frames that
waited in the queue leave in the order they were put, each once; live events that race a
replay are merged by id."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st

from livefeed.events import Event, EventId, pong_frame
from livefeed.fanout.subscription import Outgoing, Subscription
from livefeed.storage.eventlog import Page


class _Hub:
    """Joins at once; remembers who follows what."""

    def __init__(self) -> None:
        self.followers: dict[str, set[object]] = {}

    def join_now(self, name: str, listener: object) -> bool:
        return False  # the slow path: join below

    async def join(self, name: str, listener: object) -> None:
        self.followers.setdefault(name, set()).add(listener)

    def leave(self, name: str, listener: object) -> None:
        self.followers.get(name, set()).discard(listener)


class _Log:
    """One page of history after any position, handed out once ``release`` is set."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def read_page(self, topic: str, since: EventId) -> Page:
        self.reading.set()
        await self.release.wait()
        return Page(self.events, self.events[-1].id if self.events else since, more=False)


def _event(seq: int) -> Event:
    frame = json.dumps({"type": "brief.published", "topic": "briefs", "id": f"e-1-{seq}"})
    return Event(topic="briefs", id=EventId("e", 1, seq), type="brief.published", frame=frame)


def _named(item: Outgoing) -> str:
    """An event by its id, a control frame by its type."""
    if isinstance(item, Event):
        return str(item.id)
    return str(json.loads(item)["type"])


class _Socket:
    """A sink that takes a frame only while ``accepting``; it must never be offered one while
    frames are queued (that one would overtake them)."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.accepting = True
        self.written: list[str] = []
        subscription.sink = self.offer

    def offer(self, item: Outgoing) -> bool:
        assert not self.subscription.has_pending, f"{_named(item)} offered past queued frames"
        if self.accepting:
            self.written.append(_named(item))
        return self.accepting

    def drain(self, count: int) -> None:
        """What the writer task does once the socket takes frames again."""
        for _ in range(count):
            if not self.subscription.has_pending:
                return
            self.written.append(_named(self.subscription.pop()))


async def _following(socket_accepts: bool = True) -> tuple[Subscription, _Socket]:
    subscription = Subscription(_Hub(), _Log([]))  # type: ignore[arg-type]
    socket = _Socket(subscription)
    socket.accepting = socket_accepts
    await subscription.subscribe("briefs", None)
    socket.drain(1)
    assert socket.written == ["subscribed"]
    socket.written.clear()
    return subscription, socket


# A step: put an event or a control frame while the socket accepts or pushes back, or let
# the writer drain up to n queued frames.
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["event", "control"]), st.booleans()),
        st.tuples(st.just("drain"), st.integers(0, 4)),
    ),
    max_size=40,
)


@given(steps=_STEPS)
async def test_direct_writes_and_queued_frames_leave_in_the_order_put_each_once(
    steps: list[tuple[str, bool | int]],
) -> None:
    subscription, socket = await _following()
    put: list[str] = []
    for kind, arg in steps:
        if kind == "drain":
            socket.drain(int(arg))
            continue
        socket.accepting = bool(arg)
        if kind == "event":
            event = _event(len(put) + 1)
            put.append(str(event.id))
            subscription.deliver(event)
        else:
            put.append("pong")
            subscription.send(pong_frame())
    socket.drain(len(put))
    assert socket.written == put
    assert not subscription.has_pending


async def test_once_a_frame_waits_every_later_one_queues_behind_it_writable_or_not() -> None:
    subscription, socket = await _following()
    subscription.deliver(_event(1))
    socket.accepting = False
    subscription.deliver(_event(2))
    socket.accepting = True
    subscription.deliver(_event(3))
    subscription.send(pong_frame())
    assert socket.written == ["e-1-1"]
    assert await subscription.next() == _event(2)
    socket.drain(2)
    assert socket.written == ["e-1-1", "e-1-3", "pong"]
    subscription.deliver(_event(4))  # the queue is empty again: straight to the socket
    assert socket.written[-1] == "e-1-4" and not subscription.has_pending


async def test_the_writer_waits_for_a_frame_and_gets_the_oldest_first() -> None:
    subscription, _ = await _following(socket_accepts=False)
    waiting = asyncio.create_task(subscription.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    subscription.deliver(_event(1))
    subscription.deliver(_event(2))
    assert await waiting == _event(1)
    assert await subscription.next() == _event(2)


async def test_live_events_racing_a_replay_arrive_once_after_it_then_subscribed() -> None:
    log = _Log([_event(2), _event(3)])
    subscription = Subscription(_Hub(), log)  # type: ignore[arg-type]
    socket = _Socket(subscription)
    subscribing = asyncio.create_task(subscription.subscribe("briefs", "e-1-1"))
    await log.reading.wait()
    # Published while the history is read: 3 is in the page as well, 4 only live.
    subscription.deliver(_event(3))
    subscription.deliver(_event(4))
    assert socket.written == []
    log.release.set()
    assert await subscribing is True
    # The hub may still hand over an event the replay already sent (its message lags).
    subscription.deliver(_event(3))
    subscription.deliver(_event(5))
    assert socket.written == ["e-1-2", "e-1-3", "e-1-4", "subscribed", "e-1-5"]


async def test_a_reader_whose_queue_overflows_is_dropped_and_gets_nothing_more() -> None:
    hub = _Hub()
    bound = 3 * len(_event(1).frame)  # room for three events
    subscription = Subscription(hub, _Log([]), queue_bytes=bound)  # type: ignore[arg-type]
    socket = _Socket(subscription)
    dropped: list[bool] = []
    subscription.on_overflow = lambda: dropped.append(True)
    await subscription.subscribe("briefs", None)
    socket.accepting = False
    for seq in range(1, 4):
        subscription.deliver(_event(seq))
    assert not subscription.overflowed.is_set()
    subscription.deliver(_event(4))
    assert subscription.overflowed.is_set() and dropped == [True]
    assert subscription.topics == [] and not hub.followers["briefs"]
    subscription.send(pong_frame())
    socket.accepting = True
    socket.drain(10)
    # What was queued before the drop still leaves, in order; nothing after it.
    assert socket.written == ["subscribed", "e-1-1", "e-1-2", "e-1-3"]
