"""The write path of content: events appended to the log, counted for ``/metrics``.

Counted: each published event by type and source, and how long writes were refused (a write
refused because Redis is unavailable starts a streak; the next accepted one ends it).
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from livefeed.events import EventId
from livefeed.stats import Stats
from livefeed.storage.eventlog import Change, EventLog, Outcome


class Publisher:
    """Appends the events of content writes (and announcements) and counts them."""

    def __init__(self, log: EventLog, stats: Stats) -> None:
        self.log = log
        self._stats = stats

    async def append(
        self, topic: str, event_type: str, data: dict[str, Any], change: Change, source: str
    ) -> EventId | Outcome:
        """Apply ``change`` and append its event, atomically (``EventLog.append``)."""
        try:
            result = await self.log.append(topic, event_type, data, change)
        except (RedisError, OSError):
            self._stats.write_refused()  # for /metrics: how long writes were refused
            raise
        self._stats.write_accepted()
        if not isinstance(result, Outcome):
            self._stats.published[event_type, source] += 1
        return result

    async def announce(
        self, topic: str, event_type: str, data: dict[str, Any], source: str
    ) -> None:
        """Append an event that changes no content (a new count), as published."""
        await self.log.append(topic, event_type, data)
        self._stats.published[event_type, source] += 1
