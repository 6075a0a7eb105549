"""Client frames on the WebSocket: parse, validate, enforce limits."""

from __future__ import annotations

import json
from dataclasses import dataclass

from livefeed import errors, limits
from livefeed.errors import FrameError
from livefeed.events import is_topic

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
PING = "ping"

_FIELDS = {SUBSCRIBE: {"type", "topic", "since"}, UNSUBSCRIBE: {"type", "topic"}, PING: {"type"}}


@dataclass(frozen=True, slots=True)
class Frame:
    type: str
    topic: str = ""
    since: str | None = None


def parse_frame(text: str) -> Frame:
    """The client's request in ``text``, or FrameError with the code the spec names."""
    # len(text) counts code points; at most 4 bytes each, so short texts skip the encode.
    if len(text) * 4 > limits.WS_FRAME_MAX and len(text.encode()) > limits.WS_FRAME_MAX:
        raise FrameError(
            f"frames are limited to {limits.WS_FRAME_MAX} bytes", code=errors.FRAME_TOO_LARGE
        )
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError("frame is not valid JSON", code=errors.BAD_JSON) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise FrameError('a frame is a JSON object with a "type"', code=errors.BAD_FRAME)
    kind = obj["type"]
    allowed = _FIELDS.get(kind)
    if allowed is None:
        raise FrameError(f"unknown frame type {kind[:40]!r}", code=errors.UNKNOWN_TYPE)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise FrameError(f"unknown field(s) in {kind}: {', '.join(unknown)}", code=errors.BAD_FRAME)
    if kind == PING:
        return Frame(PING)
    topic = obj.get("topic")
    if not isinstance(topic, str):
        raise FrameError(f'{kind} needs a "topic" string', code=errors.BAD_FRAME)
    if not is_topic(topic):
        raise FrameError(f"unknown topic {topic[:100]!r}", code=errors.UNKNOWN_TOPIC)
    since = obj.get("since")
    if since is not None and not isinstance(since, str):
        raise FrameError('"since" must be an event id string', code=errors.BAD_FRAME)
    return Frame(kind, topic, since)
