"""The Redis key layout: one small function per key, all under the configurable prefix.

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
"""

from __future__ import annotations

from dataclasses import dataclass

from livefeed.events import BRIEFS, article_topic, comments_topic


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix."""

    prefix: str

    def _tagged(self, topic: str, suffix: str) -> str:
        return f"{self.prefix}{{{topic}}}:{suffix}"

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

    def comment_items(self, slug: str) -> str:
        return self._tagged(comments_topic(slug), "items")

    def comment_index(self, slug: str) -> str:
        return self._tagged(comments_topic(slug), "index")

    def comment_mode(self, slug: str) -> str:
        return self._tagged(comments_topic(slug), "mode")

    def comment_held(self, slug: str) -> str:
        return self._tagged(comments_topic(slug), "held")

    def comment_top(self, slug: str) -> str:
        return self._tagged(comments_topic(slug), "top")

    def comment_replies(self, slug: str, comment_id: str) -> str:
        return self._tagged(comments_topic(slug), f"replies:{comment_id}")

    def comment_featured(self, slug: str) -> str:
        return self._tagged(comments_topic(slug), "featured")

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

    def comments_closed(self, slug: str) -> str:
        return self._tagged(comments_topic(slug), "closed")

    # The editors' keys share one hash tag, so an account and its tokens change atomically.

    def editor_names(self) -> str:
        return self._tagged("editors", "names")

    def editor_account(self, name: str) -> str:
        return self._tagged("editors", f"account:{name}")

    def editor_tokens(self) -> str:
        return self._tagged("editors", "tokens")

    def editor_session(self, digest: str) -> str:
        return self._tagged("editors", f"session:{digest}")

    def session_secret(self) -> str:
        return self._tagged("editors", "secret")

    def desk_articles(self) -> str:
        return self._tagged("desk", "articles")

    def desk_comments(self) -> str:
        return self._tagged("desk", "comments")

    def desk_credits(self) -> str:
        return self._tagged("desk", "credits")

    def desk_log(self) -> str:
        return self._tagged("desk", "log")

    def desk_notices(self) -> str:
        """A plain pub/sub channel (not a topic): every process's hub listens to it."""
        return self._tagged("desk", "notices")

    def desk_pending(self) -> str:
        return self._tagged("desk", "pending")

    def desk_reported(self) -> str:
        return self._tagged("desk", "reported")

    def desk_reports(self, ref: str) -> str:
        return self._tagged("desk", f"reports:{ref}")

    def desk_reporters(self, ref: str) -> str:
        return self._tagged("desk", f"reporters:{ref}")

    def desk_readers(self) -> str:
        return self._tagged("desk", "readers")

    # Web Push: one hash tag, so a job, its marks and the subscriptions change atomically.

    def push_subscriptions(self) -> str:
        return self._tagged("push", "subscriptions")

    def push_vapid(self) -> str:
        return self._tagged("push", "vapid")

    def push_lease(self) -> str:
        return self._tagged("push", "lease")

    def push_cursor(self) -> str:
        return self._tagged("push", "cursor")

    def push_jobs(self) -> str:
        return self._tagged("push", "jobs")

    def push_marks(self, brief_id: str) -> str:
        return self._tagged("push", f"marks:{brief_id}")
