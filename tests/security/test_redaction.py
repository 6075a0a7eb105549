"""What is retracted stays retracted: replays, lists and pages after a retraction or a hide.

The outside review found a retracted brief and a hidden comment replayed verbatim (text and
author) to any WebSocket that subscribed with ``since`` = the topic's ``<epoch>-0-0``.
"""

from __future__ import annotations

import json

import httpx
from redis.asyncio import Redis

from livefeed import models
from livefeed.events import BRIEF_PUBLISHED, BRIEFS, encode_cursor, frame_parts
from livefeed.storage.keys import Keys
from tests.conftest import LiveServer
from tests.editor_support import signed_in
from tests.helpers import auth, wait_for
from tests.security.redaction import (
    SECRET_AUTHOR,
    SECRET_BRIEF,
    SECRET_COMMENT,
    SLUG,
    Newsroom,
    assert_no_secret,
    assert_ws_replays_redacted,
    expected_briefs,
    expected_comments,
    retract_and_hide,
    summary,
    ws_replay,
)
from tests.test_sse import Record, open_stream


async def test_websocket_replays_leave_out_what_was_retracted_or_hidden(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    room = await retract_and_hide(api, live_server.token)
    await assert_ws_replays_redacted(live_server.ws_url, room)


async def _sse_frames(
    api: httpx.AsyncClient, topic: str, *, since: str | None = None, last: str | None = None
) -> list[dict[str, object]]:
    async with open_stream(api, [topic], since=since, last_event_id=last) as stream:
        records: list[Record] = await stream.until_subscribed()
    return [r.json for r in records]


async def test_sse_replays_leave_out_what_was_retracted_or_hidden(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    room = await retract_and_hide(api, live_server.token)
    comments = f"comments:{SLUG}"
    for position, topic, expected in [
        (room.briefs_origin, "briefs", expected_briefs(room)),
        (room.retracted_event, "briefs", expected_briefs(room)),
        (room.corrected_event, "briefs", expected_briefs(room)),
        (room.comments_origin, comments, expected_comments(room)),
        (room.hidden_event, comments, expected_comments(room)),
    ]:
        cursor = encode_cursor({topic: position})
        for frames in (
            await _sse_frames(api, topic, last=cursor),  # EventSource's reconnect
            await _sse_frames(api, topic, since=cursor),  # ?since= on a first connection
        ):
            assert_no_secret(frames)  # type: ignore[arg-type]
            assert summary(frames) == expected, position  # type: ignore[arg-type]


async def test_lists_and_pages_never_show_it_and_the_desk_keeps_the_original(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    room = await retract_and_hide(api, live_server.token)
    for path in ("/api/briefs", f"/api/articles/{SLUG}/comments", "/", f"/articles/{SLUG}"):
        response = await api.get(path)
        assert response.status_code == 200
        for secret in (SECRET_BRIEF, SECRET_COMMENT, SECRET_AUTHOR):
            assert secret not in response.text, path
    # The editors' record: the hidden comment, text and author, on the desk only.
    editor = await signed_in(live_server)
    async with editor:
        moderation = (await editor.get("/editor/data/comments")).json()
    hidden = [c for c in moderation["items"] if c["id"] == room.hidden_id]
    assert hidden and hidden[0]["text"] == SECRET_COMMENT and hidden[0]["author"] == SECRET_AUTHOR
    # ... and the retracted brief's record is kept (it is what refuses its id again).
    redis = Redis.from_url(live_server.settings.redis_url, decode_responses=True)
    try:
        record = await redis.hget(
            f"{live_server.settings.redis_prefix}{{briefs}}:items", room.retracted_id
        )
    finally:
        await redis.aclose()
    assert record is not None and json.loads(record)["text"].startswith(SECRET_BRIEF)


async def test_ingest_re_sending_a_retracted_id_never_brings_the_text_back(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    room: Newsroom = await retract_and_hide(api, live_server.token)
    prefix = live_server.settings.redis_prefix
    service = Redis.from_url(live_server.settings.redis_url)
    again = {"id": room.retracted_id, "text": SECRET_BRIEF + " (sent again)"}
    marker = {"id": "after-the-resend", "text": "ingest went on"}
    try:
        # Both paths: the reliable stream and fire-and-forget pub/sub; then a marker.
        await service.xadd(f"{prefix}ingest", {"brief": json.dumps(again)})
        await service.publish(f"{prefix}ingest", json.dumps(again))
        await service.xadd(f"{prefix}ingest", {"brief": json.dumps(marker)})
    finally:
        await service.aclose()

    async def marker_listed() -> bool:
        items = (await api.get("/api/briefs")).json()["items"]
        return any(b["id"] == marker["id"] for b in items)

    await wait_for(marker_listed, what="the ingest marker to be published")
    listed = (await api.get("/api/briefs")).json()["items"]
    assert room.retracted_id not in [b["id"] for b in listed]
    frames = await ws_replay(live_server.ws_url, "briefs", room.briefs_origin)
    assert_no_secret(frames)
    assert [f["data"]["id"] for f in frames if f["type"] == "brief.published"] == [
        room.kept_id,
        marker["id"],
    ]


async def test_events_stored_before_the_upgrade_are_redacted_too(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    """Stream entries written by the previous version do not name their object (no ``o``
    field): a retraction must still leave them out of replays."""
    keys = Keys(live_server.settings.redis_prefix)
    brief = models.new_brief({"text": SECRET_BRIEF})
    record = json.dumps(brief.to_json())
    prefix, suffix = frame_parts(BRIEF_PUBLISHED, BRIEFS, brief.to_json())
    redis = Redis.from_url(live_server.settings.redis_url, decode_responses=True)
    try:
        # What the old append script wrote: record, index, epoch, and an entry of p and s.
        await redis.hset(keys.brief_items(), brief.id, record)
        await redis.zadd(keys.brief_index(), {brief.id: models.time_ms(brief.published_at)})
        await redis.set(keys.epoch(BRIEFS), "oldepoch")
        entry = await redis.xadd(keys.log(BRIEFS), {"p": prefix, "s": suffix})
    finally:
        await redis.aclose()
    legacy_event = f"oldepoch-{entry}"
    assert (
        await api.delete(f"/api/briefs/{brief.id}", headers=auth(live_server.token))
    ).status_code == 204
    for since in ("oldepoch-0-0", legacy_event):
        frames = await ws_replay(live_server.ws_url, "briefs", since)
        assert_no_secret(frames)
        assert summary(frames) == [("brief.deleted", brief.id), ("subscribed", "True")]


async def test_a_hidden_comment_s_later_events_are_redacted_too(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    """Redaction is about the object, not an event type: a featured comment's
    ``comment.updated`` (text and author again) is left out once it is hidden."""
    token = live_server.token
    article = {"title": "Featured", "summary": "s", "body": ["p"]}
    assert (
        await api.put("/api/articles/feat", json=article, headers=auth(token))
    ).status_code == 201
    base = "/api/articles/feat/comments"
    origin = (await api.get(base)).json()["last_event_id"]
    posted = await api.post(base, json={"author": SECRET_AUTHOR, "text": SECRET_COMMENT})
    comment = posted.json()["id"]
    assert (await api.post(f"{base}/{comment}/feature", headers=auth(token))).status_code == 200
    featured_at = (await api.get(base)).json()["last_event_id"]
    assert (await api.delete(f"{base}/{comment}", headers=auth(token))).status_code == 204
    for since in (origin, featured_at):
        frames = await ws_replay(live_server.ws_url, "comments:feat", since)
        assert_no_secret(frames)
        assert summary(frames) == [("comment.deleted", comment), ("subscribed", "True")]
