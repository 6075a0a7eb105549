"""The LivefeedError tree: each error carries its code, HTTP status and WebSocket close code."""

from __future__ import annotations

from enum import IntEnum


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


class BadJSON(LivefeedError):
    code = BAD_JSON
    status = 400


class InvalidInput(LivefeedError):
    """A well-formed request whose fields break the rules (lengths, types, unknown fields)."""

    code = INVALID
    status = 422


class Unauthorized(LivefeedError):
    code = UNAUTHORIZED
    status = 401


class Forbidden(LivefeedError):
    """Authenticated, or not needing to be, but not allowed (a bad CSRF token, a closed article)."""

    code = FORBIDDEN
    status = 403


class CommentsClosed(Forbidden):
    code = COMMENTS_CLOSED


class Conflict(LivefeedError):
    """The object changed since the client read it (another editor saved first)."""

    code = CONFLICT
    status = 409


class NotFound(LivefeedError):
    code = NOT_FOUND
    status = 404


class PayloadTooLarge(LivefeedError):
    code = PAYLOAD_TOO_LARGE
    status = 413
    close_code = CloseCode.MESSAGE_TOO_BIG


class RequestTimeout(LivefeedError):
    """The request body did not arrive in time (a slow-body client holding a connection)."""

    code = REQUEST_TIMEOUT
    status = 408


class RateLimited(LivefeedError):
    code = RATE_LIMITED
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(LivefeedError):
    """Redis cannot be reached; the client should retry shortly."""

    code = UNAVAILABLE
    status = 503
    close_code = CloseCode.TRY_AGAIN_LATER

    def __init__(self, message: str = "Redis is unavailable, try again shortly") -> None:
        super().__init__(message)


class TooManySubscriptions(LivefeedError):
    code = TOO_MANY_SUBSCRIPTIONS
    status = 400


class FrameError(LivefeedError):
    """A WebSocket frame the server cannot act on; answered with an ``error`` frame."""

    status = 400
