"""An article's comments: threads, comment modes, pending comments, featuring, counts.

What readers may see is the comment index (``{comments:<slug>}:index``): it changes in the
same atomic step as each event (``comment.created`` / ``comment.updated`` /
``comment.deleted``). Pending comments never enter it, nor the topic's history: they wait
in a hash of their own (``held``) until an editor approves them, and approval publishes
them as ``comment.created`` at that moment. So no list, page or replay can show a pending
comment, and a hidden one leaves every list with its event.

Threads are one level deep: a reply names a top-level comment (a reply to a reply is
attached to the top level). The set of top-level ids and each comment's set of replies are
maintained right after the event; listings check every id against the index.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from livefeed import events, limits, models
from livefeed.errors import CommentsClosed, InvalidInput, NotFound
from livefeed.models import Article, Comment
from livefeed.settings import Rate
from livefeed.storage.connect import Client
from livefeed.storage.eventlog import Change, Outcome, no_history
from livefeed.storage.keys import Keys
from livefeed.storage.publisher import Publisher
from livefeed.storage.ratelimit import RateLimiter

OPEN, PREMODERATED, CLOSED = models.COMMENT_MODES
PUBLISHED, PENDING = "published", "pending"


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _comment(record: str) -> Comment:
    return Comment.from_json(json.loads(record))


def _list(value: object) -> list[Any]:
    """cjson encodes an empty Lua table as ``{}``."""
    return value if isinstance(value, list) else []


def desk_ref(slug: str, comment_id: str) -> str:
    return f"{slug}/{comment_id}"


@dataclass(frozen=True, slots=True)
class CommentRules:
    """What holds a comment for moderation whatever the article's mode."""

    blocklist: tuple[str, ...] = ()
    max_links: int = 2

    def holds(self, comment: Comment) -> bool:
        text = f"{comment.author}\n{comment.text}"
        return models.count_links(text) > self.max_links or models.matches_blocklist(
            text, self.blocklist
        )


@dataclass(frozen=True, slots=True)
class Thread:
    """A top-level comment with its replies (oldest first) and how many replies it has."""

    comment: Comment
    replies: list[Comment]
    reply_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            **self.comment.to_json(),
            "reply_count": self.reply_count,
            "replies": [r.to_json() for r in self.replies],
        }


@dataclass(frozen=True, slots=True)
class Threads:
    """A page of threads, newest first, the featured comments, and the topic's position."""

    items: list[Thread]
    featured: list[Comment]
    last_event_id: str


class Comments:
    """Reads and writes of article comments; every visible change emits its event."""

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        publisher: Publisher,
        require_article: Callable[[str], Awaitable[Article]],
        comment_rate: Rate,
        rules: CommentRules,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._publisher = publisher
        self._require_article = require_article
        self._limiter = RateLimiter(redis, keys)
        self._comment_rate = comment_rate
        self._rules = rules
        script = resources.files("livefeed.storage").joinpath("list_threads.lua").read_text()
        self._list_threads = redis.register_script(script)

    # -- modes ----------------------------------------------------------------------------

    async def mode(self, slug: str) -> str:
        return self.mode_of(*await self._redis.mget(self.mode_keys(slug)))

    def mode_keys(self, slug: str) -> list[str]:
        """The keys whose values (``mode_of``) make the article's comment mode."""
        c = self._keys.comments(slug)
        return [c.closed, c.mode]

    @staticmethod
    def mode_of(closed: str | None, mode: str | None) -> str:
        if closed:
            return CLOSED
        return PREMODERATED if mode == PREMODERATED else OPEN

    async def set_mode(self, slug: str, mode: str) -> None:
        c = self._keys.comments(slug)
        async with self._redis.pipeline(transaction=True) as pipe:
            if mode == CLOSED:
                pipe.set(c.closed, models.now_iso())
            else:
                pipe.delete(c.closed)
            if mode == PREMODERATED:
                pipe.set(c.mode, PREMODERATED)
            else:
                pipe.delete(c.mode)
            await pipe.execute()

    # -- reads ----------------------------------------------------------------------------

    async def count(self, slug: str) -> int:
        """Visible comments of the article, replies included."""
        return int(await self._redis.zcard(self._keys.comments(slug).index))

    async def counts(self, slugs: list[str]) -> dict[str, int]:
        slugs = list(dict.fromkeys(slugs))
        if not slugs:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for slug in slugs:
                pipe.zcard(self._keys.comments(slug).index)
            found = await pipe.execute()
        return {slug: int(n) for slug, n in zip(slugs, found, strict=True)}

    async def threads(self, slug: str, limit: int = 20, before: str | None = None) -> Threads:
        """Threads newest first (``before``: a top-level id), replies under each."""
        k, c = self._keys, self._keys.comments(slug)
        topic = events.comments_topic(slug)
        reply = await self._list_threads(
            keys=[
                k.log(topic),
                k.epoch(topic),
                c.items,
                c.index,
                c.top,
                c.featured,
            ],
            args=[
                no_history(topic),
                before or "",
                limit,
                c.replies(""),
                limits.REPLIES_SHOWN,
                limits.FEATURED_SHOWN,
            ],
        )
        if reply[0] != "ok":
            raise InvalidInput(f"before: no listed comment has id {before!r}")
        found = json.loads(reply[1])
        items = []
        for thread in _list(found["threads"]):
            replies = [_comment(r) for r in thread[2:]]
            items.append(Thread(_comment(thread[0]), replies, int(thread[1])))
        featured = [_comment(r) for r in _list(found["featured"])]
        return Threads(items, featured, str(found["position"]))

    async def visible(self, slug: str, comment_id: str) -> Comment | None:
        c = self._keys.comments(slug)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(c.items, comment_id)
            pipe.zscore(c.index, comment_id)
            record, score = await pipe.execute()
        return None if record is None or score is None else _comment(record)

    async def held(self, slug: str, comment_id: str) -> Comment | None:
        """A comment awaiting moderation (None once approved or rejected)."""
        record = await self._redis.hget(self._keys.comments(slug).held, comment_id)
        if record is None:
            return None
        comment = _comment(record)
        return comment if comment.status == PENDING and not comment.hidden else None

    # -- writes ---------------------------------------------------------------------------

    async def post(self, slug: str, payload: object, client: str, source: str) -> Comment:
        """Validate, rate-limit, then publish a reader's comment, or hold it as pending."""
        await self._require_article(slug)
        mode = await self.mode(slug)
        if mode == CLOSED:
            raise CommentsClosed("comments are closed on this article")
        comment = models.new_comment(slug, payload)
        if comment.reply_to is not None:
            parent = await self.visible(slug, comment.reply_to)
            if parent is None:
                raise InvalidInput(f"reply_to: no visible comment {comment.reply_to!r} here")
            comment = replace(comment, reply_to=parent.reply_to or parent.id)
        await self._limiter.hit("comment", client, self._comment_rate)
        if mode == PREMODERATED or self._rules.holds(comment):
            return await self._hold(replace(comment, status=PENDING))
        await self._publish(comment, source)
        return comment

    async def _hold(self, comment: Comment) -> Comment:
        k = self._keys
        slug = comment.article
        await self._redis.hset(k.comments(slug).held, comment.id, _dump(comment.to_record()))
        score = models.time_ms(comment.created_at)
        await self._redis.zadd(k.desk.pending, {desk_ref(slug, comment.id): score})
        await self._notify_desk("queue", {"pending": desk_ref(slug, comment.id)})
        return comment

    async def _publish(self, comment: Comment, source: str) -> None:
        k = self._keys
        slug = comment.article
        score = models.time_ms(comment.created_at)
        change = self._change("create", comment, score)
        result = await self._publisher.append(
            events.comments_topic(slug), events.COMMENT_CREATED, comment.to_json(), change, source
        )
        if result is Outcome.EXISTS:
            return  # this very write ran before (a retried call)
        if comment.reply_to is None:
            await self._redis.zadd(k.comments(slug).top, {comment.id: score})
        else:
            await self._redis.zadd(k.comments(slug).replies(comment.reply_to), {comment.id: score})
        await self._tell_desk(comment)
        await self._announce_count(slug, source)

    def _change(self, op: str, comment: Comment, score: int = 0) -> Change:
        """The write of ``comment``'s record (and index entry) that goes with its event."""
        c = self._keys.comments(comment.article)
        return Change(
            op,
            c.items,
            c.index,
            id=comment.id,
            record=_dump(comment.to_record()),
            score=score,
        )

    async def approve(self, slug: str, comment_id: str, source: str) -> Comment:
        """Publish a pending comment now, as ``comment.created``."""
        await self._require_article(slug)
        pending = await self.held(slug, comment_id)
        if pending is None:
            raise NotFound(f"no pending comment {comment_id!r} on {slug!r}")
        comment = replace(pending, status=PUBLISHED)
        if comment.reply_to is not None and await self.visible(slug, comment.reply_to) is None:
            comment = replace(comment, reply_to=None)  # its comment was hidden meanwhile
        k = self._keys
        await self._publish(comment, source)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(k.comments(slug).held, comment_id)
            pipe.zrem(k.desk.pending, desk_ref(slug, comment_id))
            await pipe.execute()
        await self._notify_desk("queue", {"approved": desk_ref(slug, comment_id)})
        return comment

    async def feature(self, slug: str, comment_id: str, featured: bool, source: str) -> Comment:
        """Pin a visible comment above the others (or unpin it), as ``comment.updated``."""
        await self._require_article(slug)
        current = await self.visible(slug, comment_id)
        if current is None:
            raise NotFound(f"no visible comment {comment_id!r} on {slug!r}")
        if current.reply_to is not None and featured:
            # A pinned reply would leave its thread: feature the thread's comment instead.
            raise InvalidInput("only top-level comments can be featured, not replies")
        comment = replace(current, featured=featured)
        k = self._keys
        change = self._change("update", comment)
        result = await self._publisher.append(
            events.comments_topic(slug), events.COMMENT_UPDATED, comment.to_json(), change, source
        )
        if result is Outcome.MISSING:
            raise NotFound(f"comment {comment_id!r} was hidden")
        if featured:
            await self._redis.zadd(
                k.comments(slug).featured, {comment_id: models.time_ms(models.now_iso())}
            )
        else:
            await self._redis.zrem(k.comments(slug).featured, comment_id)
        return comment

    async def hide(self, slug: str, comment_id: str, source: str) -> Comment:
        """Hide a comment (and its replies) from readers, or reject a pending one.

        Hidden comments stay stored, marked hidden, for the editors' record.
        """
        await self._require_article(slug)
        pending = await self.held(slug, comment_id)
        if pending is not None:
            return await self._reject(pending)
        current = await self.visible(slug, comment_id)
        if current is None:
            raise NotFound(f"no comment {comment_id!r} on {slug!r}")
        await self._hide_visible(current, source)
        if current.reply_to is None:
            replies = await self._redis.zrange(self._keys.comments(slug).replies(comment_id), 0, -1)
            for reply_id in replies:
                reply = await self.visible(slug, reply_id)
                if reply is not None:
                    await self._hide_visible(reply, source)
        await self._announce_count(slug, source)
        await self._notify_desk("queue", {"hidden": desk_ref(slug, comment_id)})
        return current

    async def _hide_visible(self, comment: Comment, source: str) -> None:
        k = self._keys
        slug = comment.article
        c = k.comments(slug)
        change = self._change("remove", replace(comment, hidden=True))
        data = {"id": comment.id, "article": slug}
        result = await self._publisher.append(
            events.comments_topic(slug), events.COMMENT_DELETED, data, change, source
        )
        if result is Outcome.MISSING:
            raise NotFound(f"comment {comment.id!r} is already hidden")
        ref = desk_ref(slug, comment.id)
        async with self._redis.pipeline(transaction=False) as pipe:
            if comment.reply_to is None:
                pipe.zrem(c.top, comment.id)
            else:
                pipe.zrem(c.replies(comment.reply_to), comment.id)
            pipe.zrem(c.featured, comment.id)
            pipe.zrem(k.desk.reported, ref)
            await pipe.execute()

    async def _reject(self, pending: Comment) -> Comment:
        k = self._keys
        slug = pending.article
        rejected = replace(pending, hidden=True)
        await self._redis.hset(k.comments(slug).held, pending.id, _dump(rejected.to_record()))
        await self._redis.zrem(k.desk.pending, desk_ref(slug, pending.id))
        await self._notify_desk("queue", {"hidden": desk_ref(slug, pending.id)})
        return pending

    async def _announce_count(self, slug: str, source: str) -> None:
        """A ``comments.count`` event on ``article:<slug>`` with the count now."""
        count = await self.count(slug)
        topic = events.article_topic(slug)
        data = {"article": slug, "count": count}
        await self._publisher.announce(topic, events.COMMENTS_COUNT, data, source)

    async def _tell_desk(self, comment: Comment) -> None:
        """Index the comment among the latest of all articles, and show it to open editor
        pages (a separate key and a plain channel: they may live on another shard)."""
        k = self._keys
        member = desk_ref(comment.article, comment.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(k.desk.comments, {member: models.time_ms(comment.created_at)})
            pipe.zremrangebyrank(k.desk.comments, 0, -limits.DESK_COMMENTS_KEPT - 1)
            await pipe.execute()
        await self._notify_desk("comment.created", comment.to_record())

    async def _notify_desk(self, kind: str, data: dict[str, Any]) -> None:
        await self._redis.publish(self._keys.desk.notices, _dump({"type": kind, "data": data}))
