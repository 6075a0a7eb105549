"""The LivefeedError tree: each error carries its code, HTTP status and WebSocket close code."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import TypeVar


class CloseCode(IntEnum):
    """WebSocket close codes that tell the client what to do next."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server going away: reconnect now, elsewhere, and resume
    POLICY_VIOLATION = 1008  # do not retry blindly
    MESSAGE_TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013  # too slow: reconnect later and resume


# Error codes on the wire (HTTP `error.code` and WebSocket `error` frames).
BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
UNKNOWN_TYPE = "unknown_type"
UNKNOWN_TOPIC = "unknown_topic"
FRAME_TOO_LARGE = "frame_too_large"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
INVALID = "invalid"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
PAYLOAD_TOO_LARGE = "payload_too_large"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
METHOD_NOT_ALLOWED = "method_not_allowed"
FORBIDDEN_ORIGIN = "forbidden_origin"
FORBIDDEN = "forbidden"
CSRF_FAILED = "csrf_failed"
COMMENTS_CLOSED = "comments_closed"
CONFLICT = "conflict"
REQUEST_TIMEOUT = "request_timeout"


class LivefeedError(Exception):
    """Bad input or an unavailable dependency, told to the client; never a 500."""

    code = INVALID
    status = 400
    close_code = CloseCode.POLICY_VIOLATION

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


_E = TypeVar("_E", bound=LivefeedError)


def _told_as(
    code: str, status: int, close_code: CloseCode = CloseCode.POLICY_VIOLATION
) -> Callable[[type[_E]], type[_E]]:
    """Give an error class its wire code, HTTP status and WebSocket close code, in one line."""

    def tell(cls: type[_E]) -> type[_E]:
        cls.code, cls.status, cls.close_code = code, status, close_code
        return cls

    return tell


@_told_as(BAD_JSON, 400)
class BadJSON(LivefeedError):
    """A body that is not JSON at all."""


@_told_as(INVALID, 422)
class InvalidInput(LivefeedError):
    """A well-formed request whose fields break the rules (lengths, types, unknown fields)."""


@_told_as(UNAUTHORIZED, 401)
class Unauthorized(LivefeedError):
    """No credentials, or ones that are not (or no longer) valid."""


@_told_as(FORBIDDEN, 403)
class Forbidden(LivefeedError):
    """Authenticated, or not needing to be, but not allowed (a bad CSRF token, a closed article)."""


@_told_as(COMMENTS_CLOSED, 403)
class CommentsClosed(Forbidden):
    """The article takes no new comments."""


@_told_as(CONFLICT, 409)
class Conflict(LivefeedError):
    """The object changed since the client read it (another editor saved first)."""


@_told_as(NOT_FOUND, 404)
class NotFound(LivefeedError):
    """No such article, brief, comment or account."""


@_told_as(PAYLOAD_TOO_LARGE, 413, CloseCode.MESSAGE_TOO_BIG)
class PayloadTooLarge(LivefeedError):
    """A body or frame over its size limit."""


@_told_as(REQUEST_TIMEOUT, 408)
class RequestTimeout(LivefeedError):
    """The request body did not arrive in time (a slow-body client holding a connection)."""


@_told_as(RATE_LIMITED, 429)
class RateLimited(LivefeedError):
    """Too many requests of one kind from one client; ``retry_after`` says for how long."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@_told_as(UNAVAILABLE, 503, CloseCode.TRY_AGAIN_LATER)
class Unavailable(LivefeedError):
    """Redis cannot be reached; the client should retry shortly."""

    def __init__(self, message: str = "Redis is unavailable, try again shortly") -> None:
        super().__init__(message)


@_told_as(TOO_MANY_SUBSCRIPTIONS, 400)
class TooManySubscriptions(LivefeedError):
    """A reader asked for more topics than one connection may follow."""


@_told_as(INVALID, 400)
class FrameError(LivefeedError):
    """A WebSocket frame the server cannot act on; answered with an ``error`` frame."""
