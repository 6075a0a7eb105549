"""Topics, event types, event ids and the wire encoding of events: defined once, here.

An event on the wire is one JSON object::

    {"type": "brief.published", "topic": "briefs", "id": "<event id>", "data": {...}}

``python -m livefeed.events`` prints the browser's copy of the record names (the ES module
``static/live/event-types.js``); this module does no other I/O.

An event id is ``<epoch>-<ms>-<seq>``: the epoch names one incarnation of the topic's
history (a history Redis lost and started again gets a new epoch, so an old id can never
look valid in it), ``<ms>-<seq>`` orders events strictly within the topic. Clients treat
ids as opaque and only echo them back.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import sys
from dataclasses import dataclass
from typing import Any, Final

from livefeed import limits

BRIEFS = "briefs"
COMMENTS_PREFIX = "comments:"
ARTICLE_PREFIX = "article:"

# Every event type, defined here and nowhere else. The browser gets these lists from
# static/live/event-types.js, generated from this module (``python -m livefeed.events``);
# tests/test_event_types.py fails while that file differs. docs/architecture.md walks
# through adding a type.
BRIEF_PUBLISHED: Final = "brief.published"  # on briefs
BRIEF_UPDATED: Final = "brief.updated"
BRIEF_DELETED: Final = "brief.deleted"
COMMENT_CREATED: Final = "comment.created"  # on comments:<slug>
COMMENT_DELETED: Final = "comment.deleted"
COMMENT_UPDATED: Final = "comment.updated"  # featured or unfeatured
ARTICLE_UPDATED: Final = "article.updated"  # on article:<slug>
COMMENTS_COUNT: Final = "comments.count"  # {"article", "count"}: visible comments

EVENT_TYPES: Final = (
    BRIEF_PUBLISHED,
    BRIEF_UPDATED,
    BRIEF_DELETED,
    COMMENT_CREATED,
    COMMENT_DELETED,
    COMMENT_UPDATED,
    ARTICLE_UPDATED,
    COMMENTS_COUNT,
)

# Control frames, server -> client.
SUBSCRIBED: Final = "subscribed"
UNSUBSCRIBED: Final = "unsubscribed"
PONG: Final = "pong"
ERROR: Final = "error"

# The named records of /events. EventSource dispatches only the names a page listens
# for, so a name missing from the browser's list is an event its SSE readers never get.
SSE_RECORD_TYPES: Final = (SUBSCRIBED, *EVENT_TYPES)

# The named records of the desk's own stream, /editor/live (notices, never replayed).
DESK_RECORD_TYPES: Final = ("hello", "readers", COMMENT_CREATED, "credit", "signed-out", "queue")

_SLUG = re.compile(limits.SLUG_PATTERN)
_EVENT_ID = re.compile(r"([0-9a-z]{1,16})-([0-9]{1,20})-([0-9]{1,20})")


def comments_topic(slug: str) -> str:
    return COMMENTS_PREFIX + slug


def article_topic(slug: str) -> str:
    return ARTICLE_PREFIX + slug


def is_topic(name: object) -> bool:
    """True for ``briefs``, ``comments:<slug>`` and ``article:<slug>``."""
    if not isinstance(name, str):
        return False
    if name == BRIEFS:
        return True
    for prefix in (COMMENTS_PREFIX, ARTICLE_PREFIX):
        if name.startswith(prefix):
            return _SLUG.fullmatch(name[len(prefix) :]) is not None
    return False


@dataclass(frozen=True, slots=True, order=True)
class EventId:
    """A parsed event id; ids of one epoch order like the events they name."""

    epoch: str
    ms: int
    seq: int

    @classmethod
    def origin(cls, epoch: str) -> EventId:
        """The position before the first event of a history."""
        return cls(epoch, 0, 0)

    @classmethod
    def parse(cls, text: object) -> EventId | None:
        """The id, or None when ``text`` is not an event id this server could have issued."""
        if not isinstance(text, str) or len(text) > limits.EVENT_ID_MAX:
            return None
        match = _EVENT_ID.fullmatch(text)
        if match is None:
            return None
        return cls(match[1], int(match[2]), int(match[3]))

    def __str__(self) -> str:
        return f"{self.epoch}-{self.ms}-{self.seq}"

    @property
    def is_origin(self) -> bool:
        return self.ms == 0 and self.seq == 0

    @property
    def sequence(self) -> str:
        """The ``<ms>-<seq>`` part, ordered within the epoch."""
        return f"{self.ms}-{self.seq}"


@dataclass(frozen=True, slots=True)
class Event:
    """One event as delivered: the parsed header and its wire frame, encoded once."""

    topic: str
    id: EventId
    type: str
    frame: str

    @classmethod
    def from_frame(cls, frame: str | bytes) -> Event:
        """Parse a frame produced by ``frame_parts``; raises ValueError if it is not one."""
        text = frame.decode() if isinstance(frame, bytes) else frame
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError(f"not an event frame: {text[:120]!r}")
        event_id = EventId.parse(obj.get("id"))
        valid = event_id is not None and is_topic(obj.get("topic"))
        if not valid or not isinstance(obj.get("type"), str):
            raise ValueError(f"not an event frame: {text[:120]!r}")
        return cls(topic=obj["topic"], id=event_id, type=obj["type"], frame=text)  # type: ignore[arg-type]


def parse_live_message(message: bytes) -> tuple[EventId, Event]:
    """A live message from a topic's channel: ``<previous event id> <frame>``.

    The previous id lets a receiver notice an event it never got. Raises ValueError.
    """
    prev_text, _, frame = message.partition(b" ")
    prev = EventId.parse(prev_text.decode("ascii", "replace"))
    if prev is None:
        raise ValueError(f"live message without a previous id: {message[:80]!r}")
    return prev, Event.from_frame(frame)


def frame_parts(event_type: str, topic: str, data: dict[str, Any]) -> tuple[str, str]:
    """The frame split around its id, so storage can insert the id it assigns atomically.

    ``prefix + str(event_id) + suffix`` is the complete wire frame. Event ids need no JSON
    escaping, so the concatenation is valid JSON.
    """
    head = json.dumps({"type": event_type, "topic": topic, "id": ""}, separators=(",", ":"))
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return head[:-2], '","data":' + body + "}"


def encode(obj: dict[str, Any]) -> str:
    """Compact JSON for the wire."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=4096)  # every reader of a topic gets the same frame
def subscribed_frame(topic: str, *, recovered: bool) -> str:
    return encode({"type": SUBSCRIBED, "topic": topic, "recovered": recovered})


def unsubscribed_frame(topic: str) -> str:
    return encode({"type": UNSUBSCRIBED, "topic": topic})


@functools.cache
def pong_frame() -> str:
    return encode({"type": PONG})


def error_frame(code: str, message: str) -> str:
    return encode({"type": ERROR, "code": code, "message": message})


def encode_cursor(positions: dict[str, str]) -> str:
    """One SSE cursor for several topics: their last event ids, URL-safe."""
    raw = encode(positions).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str] | None:
    """The ``{topic: event id}`` a cursor carries, or None if it is not a cursor of ours."""
    if len(cursor) > limits.SSE_CURSOR_MAX:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not all(
        is_topic(k) and isinstance(v, str) for k, v in obj.items()
    ):
        return None
    return obj


def browser_module() -> str:
    """``static/live/event-types.js``: the lists above as an ES module for the pages."""

    def array(names: tuple[str, ...]) -> str:
        return "Object.freeze([\n" + "".join(f"  {json.dumps(n)},\n" for n in names) + "])"

    return (
        "// Generated by `python -m livefeed.events > static/live/event-types.js` from\n"
        "// livefeed/events.py — do not edit.\n\n"
        "/** Every named record /events sends: EventSource fires only the names it is told. */\n"
        f"export const SSE_RECORD_TYPES = {array(SSE_RECORD_TYPES)};\n\n"
        "/** Every named record the desk's stream /editor/live sends. */\n"
        f"export const DESK_RECORD_TYPES = {array(DESK_RECORD_TYPES)};\n"
    )


if __name__ == "__main__":
    sys.stdout.write(browser_module())
