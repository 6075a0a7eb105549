"""The editors' desk: every editor write, credited to the editor who made it.

A write goes through ``Content`` (which stores it and emits its event) and is then
credited: ``<kind>:<id>:<action> -> editor`` in one hash (the latest editor of each
action) and one entry in a capped desk log of who did what. Credits never enter the
objects or their events, so readers never see them. A notice of the credit goes to the
open editor pages of every process.

A write is credited right after it succeeds, in a separate step (the credits may live on
another shard than the object): if the process dies in between, the write stands,
uncredited.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from livefeed import limits, models
from livefeed.errors import Conflict, NotFound
from livefeed.models import Article, Brief, Comment
from livefeed.storage.connect import Client
from livefeed.storage.content import Content
from livefeed.storage.keys import Keys
from livefeed.storage.moderation import Moderation

# Kinds of objects and the actions credited on them.
BRIEF = "brief"
ARTICLE = "article"
COMMENT = "comment"
PUBLISHED, CORRECTED, RETRACTED = "published", "corrected", "retracted"
CREATED, UPDATED = "created", "updated"
HIDDEN = "hidden"
APPROVED, FEATURED, UNFEATURED, CLEARED = "approved", "featured", "unfeatured", "cleared reports"
COMMENT_MODE = "comment mode"
CLOSED_COMMENTS, OPENED_COMMENTS = "closed comments", "opened comments"

Credits = dict[str, str]  # action -> editor


@dataclass(frozen=True, slots=True)
class Activity:
    """One line of the desk log."""

    at: str
    editor: str
    action: str
    kind: str
    id: str
    summary: str


@dataclass(frozen=True, slots=True)
class ArticleRow:
    article: Article
    comments_closed: bool
    premoderated: bool = False


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def comment_ref(slug: str, comment_id: str) -> str:
    """How the desk names a comment: ``<slug>/<id>`` (comment ids are per article)."""
    return f"{slug}/{comment_id}"


class Desk:
    """Editor writes with their credits, and what the editor pages list."""

    def __init__(self, redis: Client, keys: Keys, content: Content) -> None:
        self._redis = redis
        self._keys = keys
        self.content = content

    # -- writes ---------------------------------------------------------------------------

    async def publish_brief(self, brief: Brief, editor: str, source: str) -> Brief:
        """Publish a brief made by an editor (its id freshly drawn, never the client's).

        Such an id can only exist already if this very write ran before: the client
        retried it after a connection broke between Redis running it and its answer. So
        that is a success, not a conflict.
        """
        published = await self.content.publish_brief(brief, source)
        if published is None:
            published = await self.content.get_brief(brief.id) or brief
        await self._credit(BRIEF, brief.id, PUBLISHED, editor, brief.text)
        return published

    async def correct_brief(
        self, brief_id: str, payload: object, editor: str, source: str, base: str | None = None
    ) -> Brief:
        """Correct a brief; with ``base`` (its ``updated_at`` as the editor saw it), refuse
        with Conflict if someone changed it since."""
        if base is not None:
            current = await self.content.get_brief(brief_id)
            if current is None:
                raise NotFound(f"no brief {brief_id!r}: it may have been retracted")
            if current.updated_at != base:
                raise Conflict(await self._changed_since(BRIEF, brief_id, CORRECTED))
        brief = await self.content.correct_brief(brief_id, payload, source)
        await self._credit(BRIEF, brief_id, CORRECTED, editor, brief.text)
        return brief

    async def retract_brief(self, brief_id: str, editor: str, source: str) -> None:
        brief = await self.content.get_brief(brief_id)
        await self.content.retract_brief(brief_id, source)
        await self._credit(BRIEF, brief_id, RETRACTED, editor, brief.text if brief else "")

    async def put_article(
        self,
        slug: str,
        payload: object,
        editor: str,
        source: str,
        *,
        base: str | None = None,
        new: bool = False,
    ) -> tuple[Article, bool]:
        """Create or update an article. ``new`` refuses to replace an existing one; ``base``
        (its ``updated_at`` as the editor saw it) refuses to overwrite someone's change."""
        if new or base is not None:
            current = await self.content.get_article(slug) if models.is_slug(slug) else None
            if new and current is not None:
                raise Conflict(f"an article with the address {slug!r} exists already")
            if base is not None and current is not None and current.updated_at != base:
                raise Conflict(await self._changed_since(ARTICLE, slug, UPDATED))
        article, created = await self.content.put_article(slug, payload, source)
        action = CREATED if created else UPDATED
        await self._credit(ARTICLE, slug, action, editor, article.title)
        return article, created

    async def hide_comment(self, slug: str, comment_id: str, editor: str, source: str) -> None:
        """Hide a comment (or reject a pending one)."""
        comment = await self.content.comments.hide(slug, comment_id, source)
        await self._credit(COMMENT, comment_ref(slug, comment_id), HIDDEN, editor, comment.text)

    async def approve_comment(
        self, slug: str, comment_id: str, editor: str, source: str
    ) -> Comment:
        comment = await self.content.comments.approve(slug, comment_id, source)
        await self._credit(COMMENT, comment_ref(slug, comment_id), APPROVED, editor, comment.text)
        return comment

    async def feature_comment(
        self, slug: str, comment_id: str, featured: bool, editor: str, source: str
    ) -> Comment:
        comment = await self.content.comments.feature(slug, comment_id, featured, source)
        action = FEATURED if featured else UNFEATURED
        await self._credit(COMMENT, comment_ref(slug, comment_id), action, editor, comment.text)
        return comment

    async def clear_reports(
        self, moderation: Moderation, slug: str, comment_id: str, editor: str
    ) -> None:
        await self.content.require_article(slug)
        comment = await self.content.comments.visible(slug, comment_id)
        await moderation.clear_reports(slug, comment_id)
        text = comment.text if comment else ""
        await self._credit(COMMENT, comment_ref(slug, comment_id), CLEARED, editor, text)

    async def set_comment_mode(self, slug: str, mode: str, editor: str) -> Article:
        article = await self.content.require_article(slug)
        await self.content.comments.set_mode(slug, models.comment_mode(mode))
        await self._credit(ARTICLE, slug, COMMENT_MODE, editor, f"{mode}: {article.title}")
        return article

    async def close_comments(self, slug: str, closed: bool, editor: str) -> Article:
        article = await self.content.require_article(slug)
        await self.content.close_comments(slug, closed)
        action = CLOSED_COMMENTS if closed else OPENED_COMMENTS
        await self._credit(ARTICLE, slug, action, editor, article.title)
        return article

    async def _credit(self, kind: str, object_id: str, action: str, editor: str, text: str) -> None:
        k = self._keys
        summary = text if len(text) <= 120 else text[:119] + "…"
        entry = {
            "at": models.now_iso(),
            "editor": editor,
            "action": action,
            "kind": kind,
            "id": object_id,
            "summary": summary,
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(k.desk.credits, f"{kind}:{object_id}:{action}", editor)
            pipe.xadd(k.desk.log, entry, maxlen=limits.DESK_ACTIVITY_KEPT, approximate=True)
            await pipe.execute()
        await self._redis.publish(k.desk.notices, _dump({"type": "credit", "data": entry}))

    async def _changed_since(self, kind: str, object_id: str, action: str) -> str:
        who = (await self.credits(kind, [object_id])).get(object_id, {}).get(action)
        by = f" by {who}" if who else ""
        return f"this {kind} was changed{by} since you opened it: reload to see the new version"

    # -- reads ----------------------------------------------------------------------------

    async def credits(self, kind: str, ids: Iterable[str]) -> dict[str, Credits]:
        """For each object id: which editor last did each action on it."""
        ids = list(dict.fromkeys(ids))
        actions = {
            BRIEF: (PUBLISHED, CORRECTED, RETRACTED),
            ARTICLE: (CREATED, UPDATED, CLOSED_COMMENTS, OPENED_COMMENTS, COMMENT_MODE),
            COMMENT: (HIDDEN, APPROVED, FEATURED, UNFEATURED, CLEARED),
        }[kind]
        fields = [f"{kind}:{i}:{a}" for i in ids for a in actions]
        if not fields:
            return {}
        values = await self._redis.hmget(self._keys.desk.credits, fields)
        found: dict[str, Credits] = {i: {} for i in ids}
        for name, editor in zip(fields, values, strict=True):
            if editor is not None:
                object_id, action = name[len(kind) + 1 :].rsplit(":", 1)
                found[object_id][action] = editor
        return found

    async def articles(self, limit: int = limits.DESK_ARTICLES) -> list[ArticleRow]:
        """The most recently updated articles, with whether their comments are closed."""
        slugs = await self._redis.zrevrange(self._keys.desk.articles, 0, limit - 1)
        if not slugs:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for slug in slugs:
                pipe.get(self._keys.article(slug))
                pipe.exists(self._keys.comments(slug).closed)
                pipe.get(self._keys.comments(slug).mode)
            replies = await pipe.execute()
        rows = []
        for record, closed, mode in zip(replies[::3], replies[1::3], replies[2::3], strict=True):
            if record is not None:
                article = Article.from_json(json.loads(record))
                rows.append(ArticleRow(article, bool(closed), mode == "premoderated"))
        return rows

    async def recent_comments(self, limit: int = limits.DESK_COMMENTS) -> list[Comment]:
        """The latest comments across all articles, newest first, hidden ones included."""
        refs = await self._redis.zrevrange(self._keys.desk.comments, 0, limit - 1)
        pairs = [ref.split("/", 1) for ref in refs if "/" in ref]
        if not pairs:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for slug, comment_id in pairs:
                pipe.hget(self._keys.comments(slug).items, comment_id)
            records = await pipe.execute()
        return [Comment.from_json(json.loads(r)) for r in records if r is not None]

    async def latest_comment(self) -> str | None:
        """The desk name (``<slug>/<id>``) of the newest comment anywhere."""
        refs = await self._redis.zrevrange(self._keys.desk.comments, 0, 0)
        return str(refs[0]) if refs else None

    async def activity(self, limit: int = limits.DESK_ACTIVITY) -> list[Activity]:
        entries = await self._redis.xrevrange(self._keys.desk.log, count=limit)
        names = [f.name for f in dataclasses.fields(Activity)]
        found = []
        for _, fields in entries:
            try:
                found.append(Activity(**{name: fields[name] for name in names}))
            except KeyError:
                continue
        return found
