"""Reader reports and the editors' moderation queue.

The queue has two parts, both shared by every process through Redis: comments awaiting
moderation (oldest first, so none waits forever) and reported comments (most reported
first). A report changes nothing readers see; it only puts the comment before an editor.
One address reporting one comment counts once (addresses are kept as digests only).
Every change to the queue is announced on the desk's channel, so open desks refresh.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from livefeed import limits, models
from livefeed.errors import InvalidInput, NotFound
from livefeed.models import Comment
from livefeed.settings import Rate
from livefeed.storage.comments import Comments, desk_ref
from livefeed.storage.connect import Client
from livefeed.storage.keys import Keys
from livefeed.storage.ratelimit import RateLimiter

PENDING, REPORTED = "pending", "reported"
STATES = (PENDING, REPORTED)


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One comment in the queue, with its reports (reason -> count) and readers' notes."""

    comment: Comment
    state: str
    reports: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return desk_ref(self.comment.article, self.comment.id)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.comment.to_json(),
            "state": self.state,
            "ref": self.ref,
            "reports": self.reports,
            "reasons": self.reasons,
            "notes": self.notes,
        }


def _split(ref: str) -> tuple[str, str] | None:
    slug, _, comment_id = ref.partition("/")
    return (slug, comment_id) if models.is_slug(slug) and models.is_id(comment_id) else None


class Moderation:
    """Reports in, the queue out."""

    def __init__(self, redis: Client, keys: Keys, comments: Comments, report_rate: Rate) -> None:
        self._redis = redis
        self._keys = keys
        self._comments = comments
        self._limiter = RateLimiter(redis, keys)
        self._report_rate = report_rate

    async def report(self, slug: str, comment_id: str, payload: object, client: str) -> bool:
        """Count a reader's report; False when this address had reported this comment."""
        reason, note = models.new_report(payload)
        if await self._comments.visible(slug, comment_id) is None:
            raise NotFound(f"no comment {comment_id!r} on {slug!r}")
        await self._limiter.hit("report", client, self._report_rate)
        k = self._keys
        ref = desk_ref(slug, comment_id)
        reporter = hashlib.sha256(client.encode()).hexdigest()[:32]
        if not await self._redis.sadd(k.desk.reporters(ref), reporter):
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(k.desk.reports(ref), reason, 1)
            if note:
                pipe.hset(k.desk.reports(ref), f"note:{reporter[:12]}", note)
            pipe.zincrby(k.desk.reported, 1, ref)
            await pipe.execute()
        await self._notify({"reported": ref})
        return True

    async def clear_reports(self, slug: str, comment_id: str) -> None:
        """Dismiss a comment's reports: it leaves the queue until reported again."""
        k = self._keys
        ref = desk_ref(slug, comment_id)
        if await self._redis.zscore(k.desk.reported, ref) is None:
            raise NotFound(f"comment {comment_id!r} on {slug!r} has no reports")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(k.desk.reported, ref)
            pipe.delete(k.desk.reports(ref), k.desk.reporters(ref))
            await pipe.execute()
        await self._notify({"cleared": ref})

    async def sizes(self) -> dict[str, int]:
        """How many comments wait in each part of the queue."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self._keys.desk.pending)
            pipe.zcard(self._keys.desk.reported)
            pending, reported = await pipe.execute()
        return {PENDING: int(pending), REPORTED: int(reported)}

    async def queue(self, state: str, limit: int = limits.MODERATION_QUEUE) -> list[QueueItem]:
        """Pending comments oldest first, or reported ones most reported first."""
        if state not in STATES:
            raise InvalidInput("state must be pending or reported")
        k = self._keys
        if state == PENDING:
            refs = await self._redis.zrange(k.desk.pending, 0, limit - 1)
            counts: dict[str, int] = {}
        else:
            scored = await self._redis.zrevrange(k.desk.reported, 0, limit - 1, withscores=True)
            refs = [ref for ref, _ in scored]
            counts = {ref: int(score) for ref, score in scored}
        pairs = [(ref, parts) for ref in refs if (parts := _split(ref)) is not None]
        async with self._redis.pipeline(transaction=False) as pipe:
            for ref, (slug, comment_id) in pairs:
                where = k.comments(slug).held if state == PENDING else k.comments(slug).items
                pipe.hget(where, comment_id)
                pipe.hgetall(k.desk.reports(ref))
            replies = await pipe.execute()
        items = []
        for (ref, _), record, reports in zip(pairs, replies[::2], replies[1::2], strict=True):
            if record is None:
                continue
            comment = Comment.from_json(json.loads(record))
            if comment.hidden:
                continue
            reasons = {r: int(n) for r, n in reports.items() if not r.startswith("note:")}
            notes = [n for r, n in reports.items() if r.startswith("note:")]
            items.append(QueueItem(comment, state, counts.get(ref, 0), reasons, notes))
        return items

    async def _notify(self, data: dict[str, Any]) -> None:
        notice = json.dumps({"type": "queue", "data": data}, separators=(",", ":"))
        await self._redis.publish(self._keys.desk.notices, notice)
