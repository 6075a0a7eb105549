"""Threads, comment modes, held comments, reports, the moderation queue, featured comments
and live counts, over the real API, WebSocket and a second process on the same Redis."""

from __future__ import annotations

import asyncio
import json
import time
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
import websockets

from livefeed.settings import Rate, Settings
from tests.conftest import LiveServer
from tests.editor_support import (
    serve_second_server,  # noqa: F401 (the fixture)
    signed_in,
)
from tests.helpers import auth, expect_silence, recv_json, subscribe
from tests.test_api import ARTICLE, assert_error
from tests.test_editor_live import desk_stream

SLUG = "talks"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(
        comment_blocklist=("idiot", "cheap pills"),
        comment_max_links=2,
        report_rate=Rate(4, 3600),
        # Reports from "different readers": the test client is the proxy that names them.
        trusted_proxies=(ip_network("127.0.0.1/32"),),
    )


@pytest.fixture
async def article(live_server: LiveServer, api: httpx.AsyncClient) -> str:
    response = await api.put(f"/api/articles/{SLUG}", json=ARTICLE, headers=auth(live_server.token))
    assert response.status_code == 201
    return SLUG


async def post(
    api: httpx.AsyncClient, text: str, reply_to: str | None = None, **headers: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"author": "Reader", "text": text}
    if reply_to is not None:
        body["reply_to"] = reply_to
    response = await api.post(f"/api/articles/{SLUG}/comments", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listing(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/api/articles/{SLUG}/comments", params=params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def queue(api: httpx.AsyncClient, token: str, state: str) -> list[dict[str, Any]]:
    response = await api.get("/api/moderation", params={"state": state}, headers=auth(token))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def act(api: httpx.AsyncClient, token: str, comment_id: str, action: str) -> httpx.Response:
    return await api.post(
        f"/api/articles/{SLUG}/comments/{comment_id}/{action}", headers=auth(token)
    )


async def events_until(ws: Any, wanted: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        event = await recv_json(ws)
        seen.append(event)
        if event["type"] == wanted:
            return seen


# -- threads ------------------------------------------------------------------------------


async def test_replies_attach_to_the_top_level_comment_live_and_in_lists(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    first = await post(api, "Top-level comment")
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, f"comments:{article}")
        reply = await post(api, "A reply", reply_to=first["id"])
        assert reply["reply_to"] == first["id"]
        event = await recv_json(ws)
        assert event["type"] == "comment.created" and event["data"]["reply_to"] == first["id"]
        # A reply to a reply joins the same thread, one level deep.
        deeper = await post(api, "A reply to the reply", reply_to=reply["id"])
        assert deeper["reply_to"] == first["id"]
    second = await post(api, "Another thread")
    body = await listing(api)
    assert [t["id"] for t in body["items"]] == [second["id"], first["id"]]
    thread = body["items"][1]
    assert thread["reply_count"] == 2
    assert [r["id"] for r in thread["replies"]] == [reply["id"], deeper["id"]]
    assert body["items"][0]["reply_count"] == 0
    # Pages of threads: `before` names a top-level comment.
    older = await listing(api, before=second["id"])
    assert [t["id"] for t in older["items"]] == [first["id"]]
    assert_error(await api.get(f"/api/articles/{SLUG}/comments?before={reply['id']}"), 422)
    # The count covers replies.
    assert (await api.get(f"/api/articles/{SLUG}")).json()["comment_count"] == 4


async def test_reply_to_must_name_a_visible_comment_of_the_article(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    base = f"/api/articles/{SLUG}/comments"
    for bad in ("no-such-comment", 7, "bad id!", ["x"]):
        response = await api.post(base, json={"author": "A", "text": "t", "reply_to": bad})
        assert_error(response, 422, "invalid")
    hidden = await post(api, "soon hidden")
    await api.delete(f"{base}/{hidden['id']}", headers=auth(live_server.token))
    response = await api.post(base, json={"author": "A", "text": "t", "reply_to": hidden["id"]})
    assert_error(response, 422, "invalid")


async def test_hiding_a_comment_hides_its_thread(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    top = await post(api, "Abusive top-level comment")
    await post(api, "Abusive reply in its thread", reply_to=top["id"])
    keep = await post(api, "keep")
    response = await api.delete(
        f"/api/articles/{SLUG}/comments/{top['id']}", headers=auth(live_server.token)
    )
    assert response.status_code == 204
    body = await listing(api)
    assert [t["id"] for t in body["items"]] == [keep["id"]]
    assert (await api.get(f"/api/articles/{SLUG}")).json()["comment_count"] == 1
    page = (await api.get(f"/articles/{SLUG}")).text
    assert "Abusive" not in page and "keep" in page


# -- comment modes and held comments ------------------------------------------------------


async def test_premoderated_comments_stay_out_of_every_list_and_replay_until_approved(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    token = live_server.token
    bad_mode = {**ARTICLE, "comment_mode": "moderated"}
    assert_error(await api.put(f"/api/articles/{SLUG}", json=bad_mode, headers=auth(token)), 422)
    moderated = {**ARTICLE, "comment_mode": "premoderated"}
    response = await api.put(f"/api/articles/{SLUG}", json=moderated, headers=auth(token))
    assert response.status_code == 200
    assert (await api.get(f"/api/articles/{SLUG}")).json()["comment_mode"] == "premoderated"
    start = (await listing(api))["last_event_id"]
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, f"comments:{article}")
        pending = await post(api, "Wait for me")
        assert pending["status"] == "pending"
        await expect_silence(ws, 0.3)
        # Invisible to every reader: lists, the page, replays from before it was posted.
        assert (await listing(api))["items"] == []
        page = await api.get(f"/articles/{SLUG}")
        assert "Wait for me" not in page.text
        async with websockets.connect(live_server.ws_url) as late:
            frames = await subscribe(late, f"comments:{article}", since=start)
            assert "Wait for me" not in json.dumps(frames)
        items = await queue(api, token, "pending")
        assert [(i["id"], i["status"]) for i in items] == [(pending["id"], "pending")]
        # A reply to a pending comment is refused: readers cannot see it.
        response = await api.post(
            f"/api/articles/{SLUG}/comments",
            json={"author": "B", "text": "t", "reply_to": pending["id"]},
        )
        assert_error(response, 422)
        approved = await act(api, token, pending["id"], "approve")
        assert approved.status_code == 200 and approved.json()["status"] == "published"
        event = await recv_json(ws)
        assert event["type"] == "comment.created" and event["data"]["id"] == pending["id"]
    assert [t["id"] for t in (await listing(api))["items"]] == [pending["id"]]
    assert await queue(api, token, "pending") == []
    assert_error(await act(api, token, pending["id"], "approve"), 404)


async def test_blocklisted_and_many_link_comments_are_held_on_an_open_article(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    held = [
        await post(api, "You are an IDIOT."),
        await post(api, "Buy cheap   pills here"),
        await post(api, "https://a.example https://b.example and www.c.example"),
    ]
    assert [c["status"] for c in held] == ["pending"] * 3
    fine = [
        await post(api, "Idiotic is not on the list"),
        await post(api, "Two links: https://a.example and https://b.example"),
    ]
    assert [c["status"] for c in fine] == ["published"] * 2
    listed = {t["id"] for t in (await listing(api))["items"]}
    assert listed == {c["id"] for c in fine}
    pending = await queue(api, live_server.token, "pending")
    assert [i["id"] for i in pending] == [c["id"] for c in held]  # oldest first


async def test_hiding_a_pending_comment_rejects_it(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    held = await post(api, "idiot")
    url = f"/api/articles/{SLUG}/comments/{held['id']}"
    assert (await api.delete(url, headers=auth(live_server.token))).status_code == 204
    assert await queue(api, live_server.token, "pending") == []
    assert_error(await act(api, live_server.token, held["id"], "approve"), 404)
    assert (await listing(api))["items"] == []


async def test_closed_mode_refuses_comments(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    closed = {**ARTICLE, "comment_mode": "closed"}
    await api.put(f"/api/articles/{SLUG}", json=closed, headers=auth(live_server.token))
    response = await api.post(f"/api/articles/{SLUG}/comments", json={"author": "a", "text": "b"})
    assert_error(response, 403, "comments_closed")
    # A PUT without comment_mode keeps the mode.
    await api.put(f"/api/articles/{SLUG}", json=ARTICLE, headers=auth(live_server.token))
    assert (await api.get(f"/api/articles/{SLUG}")).json()["comment_mode"] == "closed"


# -- reports and the queue ----------------------------------------------------------------


async def test_reports_are_deduplicated_per_address_and_ordered_by_count(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    once = await post(api, "reported once")
    twice = await post(api, "reported twice")
    base = f"/api/articles/{SLUG}/comments"

    async def report(comment: dict[str, Any], reader: str, **body: Any) -> httpx.Response:
        payload = body or {"reason": "abuse"}
        return await api.post(
            f"{base}/{comment['id']}/reports", json=payload, headers={"X-Forwarded-For": reader}
        )

    first = await report(twice, "203.0.113.1", reason="spam", note="selling things")
    assert first.status_code == 202
    assert (await report(twice, "203.0.113.1")).status_code == 202  # counted once
    assert (await report(twice, "203.0.113.2")).status_code == 202
    assert (await report(once, "203.0.113.2")).status_code == 202
    items = await queue(api, live_server.token, "reported")
    assert [(i["id"], i["reports"]) for i in items] == [(twice["id"], 2), (once["id"], 1)]
    assert items[0]["reasons"] == {"spam": 1, "abuse": 1}
    assert items[0]["notes"] == ["selling things"]
    # Nothing a reader sees changes.
    assert len((await listing(api))["items"]) == 2
    # Clearing the reports takes it out of the queue.
    cleared = await act(api, live_server.token, twice["id"], "clear-reports")
    assert cleared.status_code == 204
    assert [i["id"] for i in await queue(api, live_server.token, "reported")] == [once["id"]]
    assert_error(await act(api, live_server.token, twice["id"], "clear-reports"), 404)


async def test_reports_validate_and_are_rate_limited_per_address(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    comment = await post(api, "c")
    url = f"/api/articles/{SLUG}/comments/{comment['id']}/reports"
    for bad in ({}, {"reason": "boring"}, {"reason": "spam", "extra": 1}, {"reason": 1}, []):
        assert_error(await api.post(url, json=bad), 422)
    assert_error(await api.post(url, json={"reason": "spam", "note": "x" * 501}), 422)
    assert_error(await api.post(url, content=b"{nope"), 400)
    missing = f"/api/articles/{SLUG}/comments/nope/reports"
    assert_error(await api.post(missing, json={"reason": "spam"}), 404)
    assert_error(await api.post("/api/articles/nowhere/comments/x/reports", json={}), 404)
    statuses = []
    for _ in range(6):
        response = await api.post(
            url, json={"reason": "spam"}, headers={"X-Forwarded-For": "198.51.100.7"}
        )
        statuses.append(response.status_code)
    assert statuses == [202] * 4 + [429] * 2
    assert int(response.headers["Retry-After"]) > 0
    other = await api.post(
        url, json={"reason": "spam"}, headers={"X-Forwarded-For": "198.51.100.8"}
    )
    assert other.status_code == 202


async def test_moderation_endpoints_need_an_editor_and_validate(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    comment = await post(api, "c")
    assert_error(await api.get("/api/moderation"), 401)
    assert_error(await act(api, "wrong", comment["id"], "approve"), 401)
    bad_state = await api.get("/api/moderation?state=all", headers=auth(live_server.token))
    assert_error(bad_state, 422)
    for action in ("publish", "approve", "feature"):
        assert_error(await act(api, live_server.token, "no-such", action), 404)
    assert_error(await act(api, live_server.token, comment["id"], "explode"), 404)
    assert_error(await act(api, live_server.token, comment["id"], "approve"), 404)
    url = f"/api/articles/nowhere/comments/{comment['id']}/feature"
    assert_error(await api.post(url, headers=auth(live_server.token)), 404)
    weird = f"/api/articles/{SLUG}/comments/%00%ff/feature"
    assert (await api.post(weird, headers=auth(live_server.token))).status_code == 404


async def test_featured_comments_are_pinned_live(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    old = await post(api, "insightful")
    await post(api, "newer")
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, f"comments:{article}")
        response = await act(api, live_server.token, old["id"], "feature")
        assert response.status_code == 200 and response.json()["featured"] is True
        event = await recv_json(ws)
        assert event["type"] == "comment.updated"
        assert event["data"]["id"] == old["id"] and event["data"]["featured"] is True
        body = await listing(api)
        assert [c["id"] for c in body["featured"]] == [old["id"]]
        await act(api, live_server.token, old["id"], "unfeature")
        event = await recv_json(ws)
        assert event["type"] == "comment.updated" and event["data"]["featured"] is False
    assert (await listing(api))["featured"] == []
    reply = await post(api, "a reply", reply_to=old["id"])
    assert_error(await act(api, live_server.token, reply["id"], "feature"), 422)


# -- live counts, and the queue across processes ------------------------------------------


async def test_comment_count_events_follow_every_visible_change(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, f"article:{article}")
        first = await post(api, "one")
        await post(api, "two", reply_to=first["id"])
        await post(api, "held: idiot")
        counts = []
        for _ in range(2):
            event = await recv_json(ws)
            assert event["type"] == "comments.count"
            counts.append(event["data"])
        assert counts == [{"article": SLUG, "count": 1}, {"article": SLUG, "count": 2}]
        await expect_silence(ws, 0.3)  # the held comment changes no count
        await api.delete(
            f"/api/articles/{SLUG}/comments/{first['id']}", headers=auth(live_server.token)
        )
        event = await recv_json(ws)
        assert event["data"] == {"article": SLUG, "count": 0}


async def test_a_report_reaches_an_editors_desk_on_another_process_within_a_second(
    live_server: LiveServer, second_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    comment = await post(api, "report me")
    async with await signed_in(live_server) as browser, desk_stream(browser) as stream:
        await stream.next("hello")
        async with second_server.client() as other:
            started = time.monotonic()
            response = await other.post(
                f"/api/articles/{SLUG}/comments/{comment['id']}/reports", json={"reason": "abuse"}
            )
            assert response.status_code == 202
            _, notice = await asyncio.wait_for(stream.next("queue"), 1.0)
            assert time.monotonic() - started < 1.0
        assert notice == {"reported": f"{SLUG}/{comment['id']}"}
        items = await queue(api, live_server.token, "reported")
        assert [i["id"] for i in items] == [comment["id"]]


async def test_bad_input_never_gives_a_500(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    comment = await post(api, "c")
    token = auth(live_server.token)
    bodies: list[Any] = [
        None,
        [],
        "x",
        1,
        {"reason": None},
        {"author": "a", "text": "b", "reply_to": {}},
    ]
    paths = [
        f"/api/articles/{SLUG}/comments",
        f"/api/articles/{SLUG}/comments/{comment['id']}/reports",
        f"/api/articles/{SLUG}/comments/{comment['id']}/approve",
        f"/api/articles/{SLUG}/comments/{comment['id']}/feature",
        f"/api/articles/{SLUG}/comments/{'x' * 70}/unfeature",
        f"/api/articles/{'A' * 90}/comments/x/reports",
    ]
    for path in paths:
        for body in bodies:
            response = await api.post(path, json=body, headers=token)
            assert response.status_code < 500, (path, body, response.text)
    for params in ({"state": "x" * 1000}, {"state": ""}, {"before": "\x00"}):
        response = await api.get("/api/moderation", params=params, headers=token)
        assert response.status_code < 500
    bad_put = {**ARTICLE, "comment_mode": ["open"]}
    assert_error(await api.put(f"/api/articles/{SLUG}", json=bad_put, headers=token), 422)


async def test_the_desk_sets_the_comment_mode_credited_to_the_editor(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    async with await signed_in(live_server) as browser:
        bad = await browser.post(f"/editor/articles/{SLUG}/comments", {"mode": "sometimes"})
        assert bad.status_code == 422
        response = await browser.post(f"/editor/articles/{SLUG}/comments", {"mode": "premoderated"})
        assert response.status_code == 200
        page = await browser.client.get("/editor/articles")
        assert '<option value="premoderated" selected>' in page.text
    assert (await api.get(f"/api/articles/{SLUG}")).json()["comment_mode"] == "premoderated"
    assert (await post(api, "moderated"))["status"] == "pending"
    credits = await live_server.services.desk.credits("article", [SLUG])
    assert credits[SLUG]["comment mode"] == "alice"
