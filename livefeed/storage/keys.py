"""The Redis key layout: every key livefeed uses, all under the configurable prefix.

Every key of one topic carries the topic as its hash tag (``{briefs}``,
``{comments:<slug>}``), so a topic's event log, epoch, content and pub/sub channel live
on one Redis Cluster slot and one Lua script can write them together.

    <prefix>{<topic>}:log        stream: the topic's event history, capped
    <prefix>{<topic>}:epoch      string: names the current incarnation of that history
    <prefix>{<topic>}:live       pub/sub channel: the topic's live events
    <prefix>{<topic>}:answer:<call>  string: a write's answer, for a retry of the same call
    <prefix>{<topic>}:redacted   hash: retracted/hidden object id -> the entry that redacted it
    <prefix>{briefs}:items       hash: brief id -> brief JSON
    <prefix>{briefs}:index       sorted set: brief ids by publish time (newest first)
    <prefix>{article:<slug>}:article       string: the article's JSON
    <prefix>{comments:<slug>}:items        hash: comment id -> comment JSON (hidden kept)
    <prefix>{comments:<slug>}:index        sorted set: visible comment ids by time
    <prefix>ingest                         stream AND pub/sub channel other services publish to
    <prefix>ingest:dead                    stream: payloads that could not be published
    <prefix>ingest:lease                   string: the one process consuming the stream now
    <prefix>ingest:claim:<digest>          string: who publishes one pub/sub message
    <prefix>ratelimit:<name>:<client>      counter with expiry
    <prefix>demo:loaded                    marker: the demo content was loaded once
    <prefix>{comments:<slug>}:closed       marker: the article takes no new comments
    <prefix>{comments:<slug>}:mode         string: "premoderated" (absent: open, or closed above)
    <prefix>{comments:<slug>}:held         hash: comment id -> pending (or rejected) comment JSON
    <prefix>{comments:<slug>}:top          sorted set: visible top-level comment ids by time
    <prefix>{comments:<slug>}:replies:<id> sorted set: visible replies to one comment by time
    <prefix>{comments:<slug>}:featured     sorted set: featured comment ids by time featured
    <prefix>{editors}:names                set: editor account names
    <prefix>{editors}:account:<name>       hash: password (argon2), version, created_at
    <prefix>{editors}:tokens               hash: sha256(API token) -> {editor, id, created_at}
    <prefix>{editors}:session:<sha256>     hash: one signed-in browser (editor, csrf, ...), TTL
    <prefix>{editors}:secret               string: the session-signing key when none is set
    <prefix>{desk}:articles                sorted set: article slugs by last update
    <prefix>{desk}:comments                sorted set: "<slug>/<id>" of the latest comments
    <prefix>{desk}:credits                 hash: "<kind>:<id>:<action>" -> editor name
    <prefix>{desk}:log                     stream: who did what at the desk, capped
    <prefix>{desk}:notices                 pub/sub channel: notices for open editor pages
    <prefix>{desk}:pending                 sorted set: "<slug>/<id>" awaiting moderation, by time
    <prefix>{desk}:reported                sorted set: "<slug>/<id>" by report count
    <prefix>{desk}:reports:<slug>/<id>     hash: reason -> count, "note:<n>" -> a reader's note
    <prefix>{desk}:reporters:<slug>/<id>   set: digests of the addresses that reported it
    <prefix>{desk}:readers                 hash: process -> its reader counts (JSON, timed)
    <prefix>{push}:subscriptions           hash: sha256(endpoint) -> browser PushSubscription
    <prefix>{push}:vapid                   string: the generated VAPID private key
    <prefix>{push}:lease                   string: the one process dispatching pushes now
    <prefix>{push}:cursor                  string: the briefs event the dispatcher has read up to
    <prefix>{push}:jobs                    hash: brief id -> the breaking brief being pushed
    <prefix>{push}:marks:<brief id>        hash: subscription -> sent/removed/failed, TTL

A key of one topic is a method (``keys.log(topic)``); the keys that share a hash tag are a
small family whose fields are named after the keys (``keys.desk.pending`` is
``<prefix>{desk}:pending``): adding one is adding a field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, TypeVar, get_type_hints

from livefeed.events import BRIEFS, article_topic, comments_topic

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True, slots=True)
class KeyOf:
    """A key with a part of its own: ``keys.desk.reports(ref)`` is ``{desk}:reports:<ref>``."""

    head: str

    def __call__(self, part: str) -> str:
        return f"{self.head}:{part}"


_F = TypeVar("_F", bound="DataclassInstance")


@cache
def _parted(family: type[DataclassInstance]) -> frozenset[str]:
    return frozenset(name for name, kind in get_type_hints(family).items() if kind is KeyOf)


def _family(family: type[_F], base: str) -> _F:
    """A ``family`` whose every field is the key ``base + <field name>``."""
    parted = _parted(family)
    return family(
        **{
            f.name: KeyOf(base + f.name) if f.name in parted else base + f.name
            for f in fields(family)
        }
    )


@dataclass(frozen=True, slots=True)
class CommentKeys:
    """One article's comments, under its comments topic's hash tag."""

    items: str
    index: str
    closed: str
    mode: str
    held: str
    top: str
    featured: str
    replies: KeyOf


@dataclass(frozen=True, slots=True)
class EditorKeys:
    """One hash tag, so an account and its tokens change atomically."""

    names: str
    tokens: str
    secret: str
    account: KeyOf
    session: KeyOf


@dataclass(frozen=True, slots=True)
class DeskKeys:
    """The editors' desk; ``notices`` is a plain pub/sub channel every process's hub follows."""

    articles: str
    comments: str
    credits: str
    log: str
    notices: str
    pending: str
    reported: str
    readers: str
    reports: KeyOf
    reporters: KeyOf


@dataclass(frozen=True, slots=True)
class PushKeys:
    """Web Push: one hash tag, so a job, its marks and the subscriptions change atomically."""

    subscriptions: str
    vapid: str
    lease: str
    cursor: str
    jobs: str
    marks: KeyOf


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix."""

    prefix: str
    editors: EditorKeys = field(init=False, repr=False, compare=False)
    desk: DeskKeys = field(init=False, repr=False, compare=False)
    push: PushKeys = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived once: a frozen dataclass sets its own fields through object.__setattr__.
        object.__setattr__(self, "editors", _family(EditorKeys, self._base("editors")))
        object.__setattr__(self, "desk", _family(DeskKeys, self._base("desk")))
        object.__setattr__(self, "push", _family(PushKeys, self._base("push")))

    def _base(self, tag: str) -> str:
        return f"{self.prefix}{{{tag}}}:"

    def _tagged(self, topic: str, suffix: str) -> str:
        return self._base(topic) + suffix

    def log(self, topic: str) -> str:
        return self._tagged(topic, "log")

    def epoch(self, topic: str) -> str:
        return self._tagged(topic, "epoch")

    def answer(self, topic: str, call: str) -> str:
        """The answer to one write call on ``topic``, kept so a retried call is not re-applied."""
        return self._tagged(topic, f"answer:{call}")

    def channel(self, topic: str) -> str:
        return self._tagged(topic, "live")

    def redacted(self, topic: str) -> str:
        """The objects of ``topic`` whose earlier events replays leave out."""
        return self._tagged(topic, "redacted")

    def topic_of_channel(self, channel: str) -> str | None:
        """The topic a channel name belongs to, or None if it is not one of ours."""
        head = self.prefix + "{"
        if not (channel.startswith(head) and channel.endswith("}:live")):
            return None
        return channel[len(head) : -len("}:live")]

    def brief_items(self) -> str:
        return self._tagged(BRIEFS, "items")

    def brief_index(self) -> str:
        return self._tagged(BRIEFS, "index")

    def article(self, slug: str) -> str:
        return self._tagged(article_topic(slug), "article")

    def comments(self, slug: str) -> CommentKeys:
        return _family(CommentKeys, self._base(comments_topic(slug)))

    def ingest(self) -> str:
        """The ingest stream and, with the same name, the ingest pub/sub channel."""
        return f"{self.prefix}ingest"

    def ingest_dead(self) -> str:
        return f"{self.prefix}ingest:dead"

    def ingest_lease(self) -> str:
        return f"{self.prefix}ingest:lease"

    def ingest_claim(self, digest: str) -> str:
        return f"{self.prefix}ingest:claim:{digest}"

    def rate_limit(self, name: str, client: str) -> str:
        return f"{self.prefix}ratelimit:{name}:{client}"

    def demo_loaded(self) -> str:
        return f"{self.prefix}demo:loaded"
