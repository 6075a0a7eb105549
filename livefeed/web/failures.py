"""What an error answer carries besides its message: the wait it asks for, its page heading."""

from __future__ import annotations

from typing import Any

from livefeed import limits
from livefeed.errors import LivefeedError, RateLimited, Unavailable

HEADINGS = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Changed meanwhile",
    413: "Too large",
    415: "Unsupported form",
    422: "Invalid request",
    429: "Too many requests",
    503: "Temporarily unavailable",
}


def retry_headers(error: LivefeedError) -> dict[str, str]:
    """``Retry-After`` for a rate limit (its own wait) or an unavailable Redis; else none."""
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, Unavailable):
        return {"Retry-After": str(limits.RETRY_AFTER_REDIS_DOWN)}
    return {}


def error_page_context(error: LivefeedError, otherwise: str) -> dict[str, Any]:
    """What the ``error.html`` page of ``error`` is rendered with: its status and headers,
    its heading (what went wrong in a few words; ``otherwise`` if nothing better) and its
    message."""
    return {
        "status": error.status,
        "headers": retry_headers(error),
        "heading": HEADINGS.get(error.status, otherwise),
        "message": error.message,
    }
