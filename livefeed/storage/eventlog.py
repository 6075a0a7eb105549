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
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from typing import Any, Final

from livefeed import limits
from livefeed.events import Event, EventId, frame_parts
from livefeed.storage.connect import Client
from livefeed.storage.keys import Keys


class Gone(Enum):
    GONE = "gone"


GONE: Final = Gone.GONE


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

    def __init__(self, redis: Client, keys: Keys, history_size: int, *, sharded: bool) -> None:
        self._redis = redis
        self._publish = "SPUBLISH" if sharded else "PUBLISH"
        self._keys = keys
        self._maxlen = history_size + 1
        self._append = redis.register_script(_script("append_event.lua"))
        self._read_since = redis.register_script(_script("read_since.lua"))
        self._list = redis.register_script(_script("list_items.lua"))

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
        reply = await self._append(
            keys=[
                k.log(topic),
                k.epoch(topic),
                change.items,
                change.index,
                k.answer(topic, call),
                k.redacted(topic),
            ],
            args=[
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
            ],
        )
        if reply[0] != "ok":
            return Outcome(reply[0])
        event_id = EventId.parse(reply[1])
        if event_id is None:
            raise RuntimeError(f"append_event.lua returned a malformed id {reply[1]!r}")
        return event_id

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
