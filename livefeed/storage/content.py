"""Articles, briefs and comments in Redis, each write emitting its event atomically.

Briefs and comments live in a hash (id -> JSON record) plus a sorted set of the listed ids
by time; retracted briefs and hidden comments leave the sorted set but keep their record,
for the editors' record and so a reused id cannot publish twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from livefeed import events, models
from livefeed.errors import InvalidInput, NotFound
from livefeed.models import Article, Brief, Comment
from livefeed.settings import Rate
from livefeed.stats import Stats
from livefeed.storage.comments import CLOSED, OPEN, CommentRules, Comments, Threads
from livefeed.storage.eventlog import Change, EventLog, Outcome, no_history
from livefeed.storage.keys import Keys
from livefeed.storage.publisher import Publisher

T = TypeVar("T")

# Where a write came from, for the events-published metric.
API = "api"
EDITOR = "editor"
INGEST_STREAM = "ingest-stream"
INGEST_PUBSUB = "ingest-pubsub"

_BRIEF_FIELDS = ("id", "text", "breaking", "article", "published_at", "updated_at")


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _brief(record: str) -> Brief:
    obj = json.loads(record)
    return Brief.from_json({k: obj[k] for k in _BRIEF_FIELDS})


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """A page of objects, newest first, and the topic's position when it was read."""

    items: list[T]
    last_event_id: str


@dataclass(frozen=True, slots=True)
class ArticleVersion:
    """Where everything an article page shows stands: the positions of its topics (the
    briefs, the article, its comments) and its comment mode, which no event announces.
    Every write that changes what the page shows changes one of them."""

    positions: tuple[str, ...]
    comment_mode: str
    article_written: bool  # False: no article was ever put under this slug


class Content:
    """Reads and writes of the newsroom's objects; every write emits its event."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        log: EventLog,
        comment_rate: Rate,
        stats: Stats,
        rules: CommentRules | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._publisher = Publisher(log, stats)
        self.comments = Comments(
            redis,
            keys,
            self._publisher,
            self.require_article,
            comment_rate,
            rules or CommentRules(),
        )

    @property
    def log(self) -> EventLog:
        return self._publisher.log

    async def position(self, topic: str) -> str:
        """The topic's current last event id, for pages and list responses."""
        return str(await self.log.position(topic))

    async def article_version(self, slug: str) -> ArticleVersion:
        """The ``ArticleVersion`` of ``slug``'s page, in one round trip; writes nothing."""
        article = events.article_topic(slug)
        topics = [events.BRIEFS, article, events.comments_topic(slug)]
        positions, mode = await self.log.versions(topics, self.comments.mode_keys(slug))
        # An article's first put starts its topic's history: a topic without one is no article.
        written = not positions[1].startswith(no_history(article) + "-")
        return ArticleVersion(tuple(positions), self.comments.mode_of(*mode), written)

    # -- briefs ---------------------------------------------------------------------------

    async def list_briefs(self, limit: int = 20, before: str | None = None) -> Listing[Brief]:
        k = self._keys
        listing = await self.log.listing(
            events.BRIEFS, k.brief_items(), k.brief_index(), before, limit
        )
        if listing is None:
            raise InvalidInput(f"before: no listed brief has id {before!r}")
        return Listing([_brief(r) for r in listing.records], listing.last_event_id)

    async def get_brief(self, brief_id: str) -> Brief | None:
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.brief_items(), brief_id)
            pipe.zscore(k.brief_index(), brief_id)
            record, score = await pipe.execute()
        if record is None or score is None:
            return None
        return _brief(record)

    async def publish_brief(self, brief: Brief, source: str = API) -> Brief | None:
        """Publish a new brief; None if a brief with its id was ever published (idempotency)."""
        change = self._brief_change("create", brief, brief.to_json())
        result = await self._publisher.append(
            events.BRIEFS, events.BRIEF_PUBLISHED, brief.to_json(), change, source
        )
        return None if result is Outcome.EXISTS else brief

    async def correct_brief(self, brief_id: str, payload: object, source: str = API) -> Brief:
        current = await self.get_brief(brief_id)
        if current is None:
            raise NotFound(f"no brief {brief_id!r}")
        brief = models.corrected_brief(current, payload)
        change = self._brief_change("update", brief, brief.to_json())
        result = await self._publisher.append(
            events.BRIEFS, events.BRIEF_UPDATED, brief.to_json(), change, source
        )
        if result is Outcome.MISSING:
            raise NotFound(f"brief {brief_id!r} was retracted")
        return brief

    async def retract_brief(self, brief_id: str, source: str = API) -> None:
        current = await self.get_brief(brief_id)
        if current is None:
            raise NotFound(f"no brief {brief_id!r}")
        record = {**current.to_json(), "retracted_at": models.now_iso()}
        change = self._brief_change("remove", current, record)
        result = await self._publisher.append(
            events.BRIEFS, events.BRIEF_DELETED, {"id": brief_id}, change, source
        )
        if result is Outcome.MISSING:
            raise NotFound(f"brief {brief_id!r} was already retracted")

    def _brief_change(self, op: str, brief: Brief, record: dict[str, Any]) -> Change:
        return Change(
            op,
            self._keys.brief_items(),
            self._keys.brief_index(),
            id=brief.id,
            record=_dump(record),
            score=models.time_ms(brief.published_at),
        )

    # -- articles -------------------------------------------------------------------------

    async def get_article(self, slug: str) -> Article | None:
        record = await self._redis.get(self._keys.article(slug))
        return None if record is None else Article.from_json(json.loads(record))

    async def put_article(
        self, slug: str, payload: object, source: str = API
    ) -> tuple[Article, bool]:
        """Create or replace an article; the article and whether it is new."""
        if not models.is_slug(slug):
            raise NotFound(f"no article {slug!r}")
        existing = await self.get_article(slug)
        article = models.article_from_put(slug, payload, existing)
        mode = None
        if isinstance(payload, dict) and "comment_mode" in payload:
            mode = models.comment_mode(payload["comment_mode"])
        key = self._keys.article(slug)
        change = Change("set", key, key, record=_dump(article.to_json()))
        topic = events.article_topic(slug)
        await self._publisher.append(
            topic, events.ARTICLE_UPDATED, article.to_json(), change, source
        )
        # The editors' list of articles (a separate key: it may live on another shard).
        await self._redis.zadd(self._keys.desk.articles, {slug: models.time_ms(article.updated_at)})
        if mode is not None:
            await self.comments.set_mode(slug, mode)
        return article, existing is None

    async def latest_articles(self, limit: int) -> list[Article]:
        """The most recently published of the articles updated last, newest first."""
        slugs = await self._redis.zrevrange(self._keys.desk.articles, 0, limit * 2 - 1)
        if not slugs:
            return []
        records = await self._redis.mget([self._keys.article(str(slug)) for slug in slugs])
        found = [Article.from_json(json.loads(r)) for r in records if r is not None]
        found.sort(key=lambda a: a.published_at, reverse=True)
        return found[:limit]

    async def require_article(self, slug: str) -> Article:
        article = await self.get_article(slug) if models.is_slug(slug) else None
        if article is None:
            raise NotFound(f"no article {slug!r}")
        return article

    # -- comments (see comments.py) ------------------------------------------------------

    async def list_comments(self, slug: str, limit: int = 20, before: str | None = None) -> Threads:
        await self.require_article(slug)
        return await self.comments.threads(slug, limit, before)

    async def post_comment(
        self, slug: str, payload: object, client: str, source: str = API
    ) -> Comment:
        """Validate, rate-limit per client address, then publish a reader's comment or hold
        it for moderation (``status`` pending). Refused with ``CommentsClosed`` while the
        article's comments are closed."""
        return await self.comments.post(slug, payload, client, source)

    async def are_comments_closed(self, slug: str) -> bool:
        return await self.comments.mode(slug) == CLOSED

    async def close_comments(self, slug: str, closed: bool) -> None:
        """Close an article's comments (new ones are refused) or open them again."""
        await self.require_article(slug)
        await self.comments.set_mode(slug, CLOSED if closed else OPEN)

    async def hide_comment(self, slug: str, comment_id: str, source: str = API) -> None:
        """Hide a comment from readers (or reject a pending one); it stays stored, marked hidden."""
        await self.comments.hide(slug, comment_id, source)
