"""A newsroom that retracts a brief and hides a comment, and what replays then serve.

Shared by the single-Redis tests (tests/security/test_redaction.py) and the Redis Cluster
ones (tests/test_cluster.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import websockets

from tests.helpers import auth, recv_json, subscribe

SECRET_BRIEF = "Minister X took bribes (libellous, retracted)"
SECRET_COMMENT = "abusive words about a named person"
SECRET_AUTHOR = "Troll McTroll"
SLUG = "redaction-story"


@dataclass
class Newsroom:
    """The ids a scenario produced: the topics' origins and the events that matter."""

    briefs_origin: str  # <epoch>-0-0 of the briefs topic, as the reviewer used
    comments_origin: str
    retracted_id: str  # the brief retracted
    retracted_event: str  # its brief.published event id
    corrected_event: str  # its brief.updated event id
    kept_id: str  # a brief that stays
    hidden_id: str  # the comment hidden
    hidden_event: str  # its comment.created event id
    kept_comment_id: str


async def _position(api: httpx.AsyncClient, path: str) -> str:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    return str(response.json()["last_event_id"])


def origin_of(position: str) -> str:
    """``<epoch>-0-0``: the start of the history ``position`` belongs to."""
    return position.split("-", 1)[0] + "-0-0"


async def retract_and_hide(api: httpx.AsyncClient, token: str) -> Newsroom:
    """Publish, correct and retract a brief; post and hide a comment; keep one of each."""
    article = {"title": "A story", "summary": "s", "body": ["p"]}
    response = await api.put(f"/api/articles/{SLUG}", json=article, headers=auth(token))
    assert response.status_code in (200, 201), response.text
    comments = f"/api/articles/{SLUG}/comments"

    response = await api.post("/api/briefs", json={"text": SECRET_BRIEF}, headers=auth(token))
    assert response.status_code == 201, response.text
    retracted = response.json()["id"]
    retracted_event = await _position(api, "/api/briefs")
    response = await api.patch(
        f"/api/briefs/{retracted}",
        json={"text": SECRET_BRIEF + " (corrected)"},
        headers=auth(token),
    )
    assert response.status_code == 200, response.text
    corrected_event = await _position(api, "/api/briefs")
    response = await api.post(
        "/api/briefs", json={"text": "a brief that stays"}, headers=auth(token)
    )
    kept = response.json()["id"]

    response = await api.post(comments, json={"author": SECRET_AUTHOR, "text": SECRET_COMMENT})
    assert response.status_code == 201, response.text
    hidden = response.json()["id"]
    hidden_event = await _position(api, comments)
    response = await api.post(comments, json={"author": "Fair Reader", "text": "a fair comment"})
    kept_comment = response.json()["id"]

    assert (await api.delete(f"/api/briefs/{retracted}", headers=auth(token))).status_code == 204
    response = await api.delete(f"{comments}/{hidden}", headers=auth(token))
    assert response.status_code == 204
    return Newsroom(
        briefs_origin=origin_of(retracted_event),
        comments_origin=origin_of(hidden_event),
        retracted_id=retracted,
        retracted_event=retracted_event,
        corrected_event=corrected_event,
        kept_id=kept,
        hidden_id=hidden,
        hidden_event=hidden_event,
        kept_comment_id=kept_comment,
    )


def assert_no_secret(frames: list[dict[str, Any]]) -> None:
    text = json.dumps(frames, ensure_ascii=False)
    for secret in (SECRET_BRIEF, SECRET_COMMENT, SECRET_AUTHOR):
        assert secret not in text, f"{secret!r} was replayed: {text[:2000]}"


def summary(frames: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(type, data.id) of each frame; (subscribed, recovered) for the control frame."""
    return [
        ("subscribed", str(f["recovered"]))
        if f["type"] == "subscribed"
        else (f["type"], (f.get("data") or {}).get("id"))
        for f in frames
    ]


def expected_briefs(room: Newsroom, recovered: bool = True) -> list[tuple[str, str | None]]:
    return [
        ("brief.published", room.kept_id),
        ("brief.deleted", room.retracted_id),
        ("subscribed", str(recovered)),
    ]


def expected_comments(room: Newsroom) -> list[tuple[str, str | None]]:
    return [
        ("comment.created", room.kept_comment_id),
        ("comment.deleted", room.hidden_id),
        ("subscribed", "True"),
    ]


async def ws_replay(ws_url: str, topic: str, since: str) -> list[dict[str, Any]]:
    """The frames a fresh WebSocket gets for ``subscribe`` with ``since``."""
    async with websockets.connect(ws_url) as ws:
        return await subscribe(ws, topic, since)


async def assert_ws_replays_redacted(ws_url: str, room: Newsroom) -> None:
    briefs = await ws_replay(ws_url, "briefs", room.briefs_origin)
    assert_no_secret(briefs)
    assert summary(briefs) == expected_briefs(room)
    comments = await ws_replay(ws_url, f"comments:{SLUG}", room.comments_origin)
    assert_no_secret(comments)
    assert summary(comments) == expected_comments(room)
    # Resume positions stay exact: from the redacted events' own ids, exactly the later ones.
    for since in (room.retracted_event, room.corrected_event):
        frames = await ws_replay(ws_url, "briefs", since)
        assert_no_secret(frames)
        assert summary(frames) == expected_briefs(room)
    frames = await ws_replay(ws_url, f"comments:{SLUG}", room.hidden_event)
    assert_no_secret(frames)
    assert summary(frames) == expected_comments(room)
    # And a plain subscribe (no since) recovers nothing, shows nothing.
    assert_no_secret(await ws_replay(ws_url, "briefs", room.briefs_origin))


async def recv_until_subscribed(ws: Any) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await recv_json(ws)
        frames.append(frame)
        if frame["type"] == "subscribed":
            return frames
