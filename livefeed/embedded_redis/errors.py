"""The one error the embedded Redis raises to its callers."""

from __future__ import annotations


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be found, started, reused or stopped; the message says why."""
