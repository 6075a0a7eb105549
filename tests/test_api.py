"""The JSON API as an editor's script and a reader's browser use it: real server, real Redis."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from livefeed import models
from livefeed.settings import Rate
from tests.conftest import LiveServer
from tests.helpers import auth, expect_silence, recv_json, subscribe, wait_for

ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
ARTICLE = {"title": "Xi and Putin held talks", "summary": "In Moscow.", "body": ["One.", "Two."]}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    """The response is ``status`` with the spec's error shape (and ``code`` if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body


async def tick_past(moment: str) -> None:
    """Wait until the clock has moved past ``moment``, so the next write gets a later time."""
    await wait_for(lambda: models.now_iso() > moment, what=f"the clock to pass {moment}")


async def publish(api: httpx.AsyncClient, token: str, text: str, **extra: Any) -> dict[str, Any]:
    response = await api.post("/api/briefs", json={"text": text, **extra}, headers=auth(token))
    assert response.status_code == 201, response.text
    brief: dict[str, Any] = response.json()
    await tick_past(brief["published_at"])
    return brief


async def put_article(
    api: httpx.AsyncClient, token: str, slug: str, article: dict[str, Any] = ARTICLE
) -> httpx.Response:
    return await api.put(f"/api/articles/{slug}", json=article, headers=auth(token))


async def comment(
    api: httpx.AsyncClient, slug: str, text: str, author: str = "Reader"
) -> dict[str, Any]:
    response = await api.post(
        f"/api/articles/{slug}/comments", json={"author": author, "text": text}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    await tick_past(created["created_at"])
    return created


def listed(created: dict[str, Any]) -> dict[str, Any]:
    """A posted comment as a list shows it: a thread with no replies yet."""
    return {**created, "reply_count": 0, "replies": []}


@pytest.fixture
async def article(live_server: LiveServer, api: httpx.AsyncClient) -> str:
    assert (await put_article(api, live_server.token, "xi-putin")).status_code == 201
    return "xi-putin"


# -- listing briefs --------------------------------------------------------------------------


async def test_list_briefs_newest_first_with_last_event_id(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    empty = await api.get("/api/briefs")
    assert empty.status_code == 200
    assert empty.json()["items"] == []
    assert isinstance(empty.json()["last_event_id"], str)
    published = [await publish(api, live_server.token, f"brief {i}") for i in range(3)]
    body = (await api.get("/api/briefs")).json()
    assert set(body) == {"items", "last_event_id"}
    assert body["items"] == published[::-1]
    assert body["last_event_id"] != empty.json()["last_event_id"]


async def test_last_event_id_is_the_position_to_subscribe_from(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await publish(api, live_server.token, "before listing")
    position = (await api.get("/api/briefs")).json()["last_event_id"]
    after = await publish(api, live_server.token, "after listing")
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=position)
    assert [f["data"] for f in frames[:-1]] == [after]
    assert frames[-1]["recovered"] is True


async def test_limit_defaults_to_20_and_allows_1_to_100(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    for i in range(25):
        response = await api.post(
            "/api/briefs", json={"text": f"b{i}"}, headers=auth(live_server.token)
        )
        assert response.status_code == 201
    assert len((await api.get("/api/briefs")).json()["items"]) == 20
    assert len((await api.get("/api/briefs", params={"limit": 1})).json()["items"]) == 1
    assert len((await api.get("/api/briefs", params={"limit": 100})).json()["items"]) == 25


# "²" passes str.isdigit() but is no integer: it must be a 422 like any other bad limit.
@pytest.mark.parametrize("limit", ["0", "101", "x", "-1", "1.5", "1e2", "", " 5", "²"])
async def test_a_bad_limit_is_422(api: httpx.AsyncClient, limit: str) -> None:
    assert_error(await api.get("/api/briefs", params={"limit": limit}), 422, "invalid")


async def test_before_is_exclusive_and_pages_through_everything(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    published = [await publish(api, live_server.token, f"page {i}") for i in range(7)]
    newest_first = [b["id"] for b in reversed(published)]
    first = (await api.get("/api/briefs", params={"limit": 3})).json()["items"]
    assert [b["id"] for b in first] == newest_first[:3]
    after = (await api.get("/api/briefs", params={"limit": 3, "before": first[0]["id"]})).json()
    assert [b["id"] for b in after["items"]] == newest_first[1:4]
    seen: list[str] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"before": before} if before else {})}
        page = (await api.get("/api/briefs", params=params)).json()["items"]
        if not page:
            break
        seen += [b["id"] for b in page]
        before = page[-1]["id"]
    assert seen == newest_first


@pytest.mark.parametrize("before", ["no-such-brief", "x" * 65, "a b"])
async def test_an_unknown_before_is_422(api: httpx.AsyncClient, before: str) -> None:
    assert_error(await api.get("/api/briefs", params={"before": before}), 422, "invalid")


async def test_a_retracted_brief_is_not_a_valid_before(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    brief = await publish(api, live_server.token, "gone soon")
    await api.delete(f"/api/briefs/{brief['id']}", headers=auth(live_server.token))
    assert_error(await api.get("/api/briefs", params={"before": brief["id"]}), 422)


# -- publishing briefs -----------------------------------------------------------------------


async def test_publish_returns_the_brief(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    await put_article(api, live_server.token, "xi-putin")
    response = await api.post(
        "/api/briefs",
        json={"text": "Xi arrives in Moscow", "breaking": True, "article": "xi-putin"},
        headers=auth(live_server.token),
    )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    brief = response.json()
    assert set(brief) == {"id", "text", "breaking", "article", "published_at", "updated_at"}
    assert models.is_id(brief["id"])
    assert brief["text"] == "Xi arrives in Moscow"
    assert brief["breaking"] is True
    assert brief["article"] == "xi-putin"
    assert ISO_MS.fullmatch(brief["published_at"])
    assert brief["updated_at"] == brief["published_at"]
    assert (await api.get("/api/briefs")).json()["items"] == [brief]


async def test_publish_defaults(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    brief = await publish(api, live_server.token, "  plain  ")
    assert (brief["text"], brief["breaking"], brief["article"]) == ("plain", False, None)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dGVzdC1lZGl0b3ItdG9rZW4="},
        {"Authorization": "test-editor-token"},
        {"Authorization": "Token test-editor-token"},
    ],
)
async def test_publish_without_a_valid_token_is_401(
    live_server: LiveServer, api: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await api.post("/api/briefs", json={"text": "sneaky"}, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert (await api.get("/api/briefs")).json()["items"] == []


async def test_the_bearer_scheme_is_case_insensitive(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"bearer {live_server.token}"}
    assert (await api.post("/api/briefs", json={"text": "x"}, headers=headers)).status_code == 201


async def test_basic_scheme_with_the_right_token_is_401(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Basic {live_server.token}"}
    assert_error(await api.post("/api/briefs", json={"text": "x"}, headers=headers), 401)


@pytest.mark.parametrize(
    "body", [b"{", b"not json", b'{"text": "x",}', b"\xff\xfe", b"", b"[" * 100 + b"]" * 100]
)
async def test_malformed_json_is_400(
    live_server: LiveServer, api: httpx.AsyncClient, body: bytes
) -> None:
    response = await api.post(
        "/api/briefs",
        content=body,
        headers={**auth(live_server.token), "Content-Type": "application/json"},
    )
    assert_error(response, 400, "bad_json")


async def test_a_body_over_64_kib_is_413(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    body = json.dumps({"text": "x" * (64 * 1024)}).encode()
    response = await api.post(
        "/api/briefs",
        content=body,
        headers={**auth(live_server.token), "Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


async def test_a_chunked_body_over_64_kib_is_413(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(17):
            yield b"x" * 4096
        yield b'"}'

    response = await api.post("/api/briefs", content=chunks(), headers=auth(live_server.token))
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "x", "extra": True},
        {"text": "x", "id": "chosen-id"},
        {"text": "x", "published_at": "2020-01-01T00:00:00.000Z"},
        {},
        {"breaking": True},
        [],
        ["text"],
        "text",
        None,
        5,
        {"text": ""},
        {"text": "   "},
        {"text": "\n\t"},
        {"text": "x" * 501},
        {"text": "e\u0301" * 501},
        {"text": 5},
        {"text": None},
        {"text": "x", "breaking": "yes"},
        {"text": "x", "breaking": 1},
        {"text": "x", "article": "Not A Slug"},
        {"text": "x", "article": 5},
        {"text": "line\nbreak"},
        {"text": "bell\x07"},
        {"text": "esc\x1b[31m"},
        {"text": "nul\x00"},
        {"text": "evil \u202egnp.exe"},
        {"text": "isolate \u2066x\u2069"},
        {"text": "lone surrogate \ud800"},  # valid JSON ("\ud800"), but not a character
    ],
)
async def test_invalid_briefs_are_422(
    live_server: LiveServer, api: httpx.AsyncClient, payload: object
) -> None:
    response = await api.post(
        "/api/briefs",
        content=json.dumps(payload),  # json=None would send no body at all
        headers={**auth(live_server.token), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "invalid")
    assert (await api.get("/api/briefs")).json()["items"] == []


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("x" * 500, "x" * 500),
        ("e\u0301" * 500, "\u00e9" * 500),
        ("\U0001f4f0" * 500, "\U0001f4f0" * 500),
        ("  " + "x" * 500 + "  ", "x" * 500),
    ],
)
async def test_500_code_points_after_nfc_are_accepted(
    live_server: LiveServer, api: httpx.AsyncClient, text: str, stored: str
) -> None:
    brief = await publish(api, live_server.token, text)
    assert brief["text"] == stored
    assert (await api.get("/api/briefs")).json()["items"][0]["text"] == stored


# -- correcting and retracting ---------------------------------------------------------------


async def test_patch_corrects_and_keeps_published_at(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    brief = await publish(api, live_server.token, "Quary collapse: 17 dead")
    response = await api.patch(
        f"/api/briefs/{brief['id']}",
        json={"text": "Quarry collapse: 17 dead", "breaking": True},
        headers=auth(live_server.token),
    )
    assert response.status_code == 200
    corrected = response.json()
    assert corrected["id"] == brief["id"]
    assert corrected["text"] == "Quarry collapse: 17 dead"
    assert corrected["breaking"] is True
    assert corrected["published_at"] == brief["published_at"]
    assert ISO_MS.fullmatch(corrected["updated_at"])
    assert corrected["updated_at"] > brief["updated_at"]
    assert (await api.get("/api/briefs")).json()["items"] == [corrected]


async def test_patch_errors(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    brief = await publish(api, live_server.token, "original")
    url = f"/api/briefs/{brief['id']}"
    token = auth(live_server.token)
    assert_error(await api.patch("/api/briefs/no-such-id", json={"text": "x"}, headers=token), 404)
    assert_error(await api.patch("/api/briefs/bad.id", json={"text": "x"}, headers=token), 404)
    assert_error(await api.patch(url, json={}, headers=token), 422, "invalid")
    assert_error(await api.patch(url, json={"id": "other"}, headers=token), 422, "invalid")
    assert_error(await api.patch(url, json={"text": " "}, headers=token), 422, "invalid")
    assert_error(await api.patch(url, json={"text": "x"}), 401, "unauthorized")
    assert (await api.get("/api/briefs")).json()["items"] == [brief]


async def test_delete_retracts(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    keep = await publish(api, live_server.token, "keep")
    gone = await publish(api, live_server.token, "retract me")
    url = f"/api/briefs/{gone['id']}"
    assert_error(await api.delete(url), 401, "unauthorized")
    response = await api.delete(url, headers=auth(live_server.token))
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get("/api/briefs")).json()["items"] == [keep]
    assert_error(await api.delete(url, headers=auth(live_server.token)), 404, "not_found")
    assert_error(await api.patch(url, json={"text": "x"}, headers=auth(live_server.token)), 404)


# -- articles --------------------------------------------------------------------------------


async def test_put_creates_then_updates_an_article(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    created = await put_article(api, live_server.token, "xi-putin")
    assert created.status_code == 201
    first = created.json()
    assert first["slug"] == "xi-putin"
    assert first["body"] == ["One.", "Two."]
    assert ISO_MS.fullmatch(first["published_at"])
    got = (await api.get("/api/articles/xi-putin")).json()
    assert got == {**first, "comment_mode": "open", "comment_count": 0}
    await tick_past(first["updated_at"])
    changed = {**ARTICLE, "title": "Xi and Putin sign agreements"}
    updated = await put_article(api, live_server.token, "xi-putin", changed)
    assert updated.status_code == 200
    second = updated.json()
    assert second["title"] == "Xi and Putin sign agreements"
    assert second["published_at"] == first["published_at"]
    assert second["updated_at"] > first["updated_at"]
    assert (await api.get("/api/articles/xi-putin")).json() == {
        **second,
        "comment_mode": "open",
        "comment_count": 0,
    }


async def test_article_errors(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    token = auth(live_server.token)
    assert_error(await api.get("/api/articles/no-such-article"), 404, "not_found")
    assert_error(await api.get("/api/articles/Not_A_Slug"), 404)
    assert_error(await api.get("/api/articles/" + "a" * 81), 404)
    assert_error(await api.put("/api/articles/Not_A_Slug", json=ARTICLE, headers=token), 404)
    assert_error(await api.put("/api/articles/a", json=ARTICLE), 401)
    missing = {"title": "t", "summary": "s"}
    assert_error(await api.put("/api/articles/a", json=missing, headers=token), 422, "invalid")
    extra = {**ARTICLE, "slug": "b"}
    assert_error(await api.put("/api/articles/a", json=extra, headers=token), 422, "invalid")
    wrong = {**ARTICLE, "body": "one paragraph"}
    assert_error(await api.put("/api/articles/a", json=wrong, headers=token), 422, "invalid")
    assert_error(await api.get("/api/articles/a"), 404)


# -- comments --------------------------------------------------------------------------------


async def test_readers_post_comments_without_a_token(api: httpx.AsyncClient, article: str) -> None:
    response = await api.post(
        f"/api/articles/{article}/comments", json={"author": " Ann ", "text": "Hi\nthere"}
    )
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {
        "id",
        "article",
        "author",
        "text",
        "created_at",
        "reply_to",
        "featured",
        "status",
    }
    assert created["status"] == "published" and created["reply_to"] is None
    assert (created["article"], created["author"], created["text"]) == (
        article,
        "Ann",
        "Hi\nthere",
    )
    assert models.is_id(created["id"])
    assert ISO_MS.fullmatch(created["created_at"])


async def test_list_comments_newest_first_with_last_event_id(
    api: httpx.AsyncClient, article: str
) -> None:
    empty = (await api.get(f"/api/articles/{article}/comments")).json()
    assert empty["items"] == []
    posted = [await comment(api, article, f"comment {i}") for i in range(4)]
    body = (await api.get(f"/api/articles/{article}/comments")).json()
    assert set(body) == {"items", "featured", "last_event_id"}
    assert body["items"] == [listed(c) for c in posted[::-1]]
    assert body["last_event_id"] != empty["last_event_id"]
    page = await api.get(
        f"/api/articles/{article}/comments", params={"limit": 2, "before": posted[2]["id"]}
    )
    assert page.json()["items"] == [listed(posted[1]), listed(posted[0])]
    assert_error(await api.get(f"/api/articles/{article}/comments", params={"limit": 0}), 422)
    assert_error(await api.get(f"/api/articles/{article}/comments", params={"before": "nope"}), 422)


async def test_comments_belong_to_their_article(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    await put_article(api, live_server.token, "other")
    mine = await comment(api, article, "on xi")
    await comment(api, "other", "on other")
    assert (await api.get(f"/api/articles/{article}/comments")).json()["items"] == [listed(mine)]


@pytest.mark.parametrize(
    "payload",
    [
        {"author": "a" * 61, "text": "hi"},
        {"author": "Ann", "text": "t" * 2001},
        {"author": "", "text": "hi"},
        {"author": "Ann", "text": "  "},
        {"author": "Ann"},
        {"text": "hi"},
        {"author": "Ann", "text": "hi", "hidden": True},
        {"author": 5, "text": "hi"},
        {"author": "Ann\nBob", "text": "hi"},
        {"author": "Ann", "text": "\u202eevil"},
        {"author": "Ann", "text": "nul\x00"},
        {"author": "\udfff", "text": "hi"},
        {"author": "Ann", "text": "half an emoji \ud83d"},
        [],
    ],
)
async def test_invalid_comments_are_422(
    api: httpx.AsyncClient, article: str, payload: object
) -> None:
    response = await api.post(
        f"/api/articles/{article}/comments",
        content=json.dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 422, "invalid")
    assert (await api.get(f"/api/articles/{article}/comments")).json()["items"] == []


async def test_oversized_comment_and_article_bodies_are_413(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    huge = "x" * (64 * 1024)
    response = await api.post(
        f"/api/articles/{article}/comments", json={"author": "Ann", "text": huge}
    )
    assert_error(response, 413, "payload_too_large")
    response = await api.put(
        f"/api/articles/{article}",
        json={**ARTICLE, "body": [huge]},
        headers=auth(live_server.token),
    )
    assert_error(response, 413, "payload_too_large")


async def test_comment_limits_are_inclusive(api: httpx.AsyncClient, article: str) -> None:
    created = await comment(api, article, "t" * 2000, author="a" * 60)
    assert (len(created["author"]), len(created["text"])) == (60, 2000)


async def test_comments_on_unknown_articles_are_404(api: httpx.AsyncClient) -> None:
    body = {"author": "Ann", "text": "hi"}
    assert_error(await api.post("/api/articles/no-such/comments", json=body), 404, "not_found")
    assert_error(await api.post("/api/articles/Bad_Slug/comments", json=body), 404)
    assert_error(await api.get("/api/articles/no-such/comments"), 404, "not_found")


async def test_editors_hide_comments(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    keep = await comment(api, article, "fine")
    abusive = await comment(api, article, "abusive")
    url = f"/api/articles/{article}/comments/{abusive['id']}"
    assert_error(await api.delete(url), 401, "unauthorized")
    assert_error(await api.delete(url, headers=auth("wrong")), 401)
    response = await api.delete(url, headers=auth(live_server.token))
    assert response.status_code == 204
    assert (await api.get(f"/api/articles/{article}/comments")).json()["items"] == [listed(keep)]
    assert_error(await api.delete(url, headers=auth(live_server.token)), 404, "not_found")
    missing = f"/api/articles/{article}/comments/no-such-comment"
    assert_error(await api.delete(missing, headers=auth(live_server.token)), 404)
    elsewhere = f"/api/articles/no-such-article/comments/{keep['id']}"
    assert_error(await api.delete(elsewhere, headers=auth(live_server.token)), 404)
    await put_article(api, live_server.token, "other")
    other = f"/api/articles/other/comments/{keep['id']}"
    assert_error(await api.delete(other, headers=auth(live_server.token)), 404)
    assert (await api.get(f"/api/articles/{article}/comments")).json()["items"] == [listed(keep)]


class TestCommentRateLimit:
    @pytest.fixture
    def settings(self, settings):
        return settings.with_(comment_rate=Rate(2, 60))

    async def test_the_third_comment_in_a_minute_is_429(
        self, api: httpx.AsyncClient, article: str
    ) -> None:
        url = f"/api/articles/{article}/comments"
        for i in range(2):
            response = await api.post(url, json={"author": "Ann", "text": f"c{i}"})
            assert response.status_code == 201
        refused = await api.post(url, json={"author": "Ann", "text": "one too many"})
        assert_error(refused, 429, "rate_limited")
        retry_after = refused.headers["Retry-After"]
        assert retry_after.isdigit(), retry_after
        assert 1 <= int(retry_after) <= 60
        items = (await api.get(url)).json()["items"]
        assert [c["text"] for c in items] == ["c1", "c0"]

    async def test_invalid_comments_do_not_count(
        self, api: httpx.AsyncClient, article: str
    ) -> None:
        url = f"/api/articles/{article}/comments"
        for _ in range(3):
            assert_error(await api.post(url, json={"author": "Ann", "text": ""}), 422)
        for i in range(2):
            response = await api.post(url, json={"author": "Ann", "text": f"c{i}"})
            assert response.status_code == 201

    async def test_the_limit_holds_across_processes(
        self, live_server: LiveServer, api: httpx.AsyncClient, article: str
    ) -> None:
        other = LiveServer(live_server.settings)
        await other.start()
        try:
            async with other.client() as other_api:
                url = f"/api/articles/{article}/comments"
                first = await api.post(url, json={"author": "Ann", "text": "one"})
                second = await other_api.post(url, json={"author": "Ann", "text": "two"})
                assert (first.status_code, second.status_code) == (201, 201)
                assert_error(await api.post(url, json={"author": "A", "text": "3"}), 429)
                refused = await other_api.post(url, json={"author": "A", "text": "4"})
                assert_error(refused, 429, "rate_limited")
                assert int(refused.headers["Retry-After"]) >= 1
        finally:
            await other.stop()


# -- every write emits its event -------------------------------------------------------------


async def test_comment_writes_emit_events(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, f"comments:{article}")
        created = await comment(api, article, "first!")
        event = await recv_json(ws)
        assert event["type"] == "comment.created"
        assert event["topic"] == f"comments:{article}"
        assert event["data"] == created
        response = await api.delete(
            f"/api/articles/{article}/comments/{created['id']}", headers=auth(live_server.token)
        )
        assert response.status_code == 204
        event = await recv_json(ws)
        assert event["type"] == "comment.deleted"
        assert event["data"]["id"] == created["id"]
        await expect_silence(ws)


async def test_article_writes_emit_events(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "article:xi-putin")
        created = (await put_article(api, live_server.token, "xi-putin")).json()
        event = await recv_json(ws)
        assert (event["type"], event["topic"]) == ("article.updated", "article:xi-putin")
        assert event["data"] == created
        changed = {**ARTICLE, "summary": "In Moscow, on Thursday."}
        updated = (await put_article(api, live_server.token, "xi-putin", changed)).json()
        event = await recv_json(ws)
        assert event["type"] == "article.updated"
        assert event["data"] == updated
        await expect_silence(ws)


async def test_brief_writes_emit_events(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        brief = await publish(api, live_server.token, "Wildfires")
        event = await recv_json(ws)
        assert (event["type"], event["data"]) == ("brief.published", brief)
        patched = await api.patch(
            f"/api/briefs/{brief['id']}", json={"breaking": True}, headers=auth(live_server.token)
        )
        event = await recv_json(ws)
        assert (event["type"], event["data"]) == ("brief.updated", patched.json())
        await api.delete(f"/api/briefs/{brief['id']}", headers=auth(live_server.token))
        event = await recv_json(ws)
        assert event["type"] == "brief.deleted"
        assert event["data"]["id"] == brief["id"]
        await expect_silence(ws)


async def test_refused_writes_emit_nothing(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        await subscribe(ws, f"comments:{article}")
        await api.post("/api/briefs", json={"text": ""}, headers=auth(live_server.token))
        await api.post("/api/briefs", json={"text": "no token"})
        await api.post(f"/api/articles/{article}/comments", json={"author": "", "text": "x"})
        await api.patch("/api/briefs/nope", json={"text": "x"}, headers=auth(live_server.token))
        await expect_silence(ws)


# -- routing and health ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/nope", "/api/briefs/x/y", "/api/articles"])
async def test_unknown_api_routes_are_404_json(api: httpx.AsyncClient, path: str) -> None:
    assert_error(await api.get(path, headers={"Accept": "text/html"}), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/briefs"),
        ("DELETE", "/api/briefs"),
        ("GET", "/api/briefs/some-id"),
        ("POST", "/api/articles/xi"),
        ("PATCH", "/api/articles/xi/comments"),
    ],
)
async def test_wrong_methods_are_405(api: httpx.AsyncClient, method: str, path: str) -> None:
    assert_error(await api.request(method, path), 405, "method_not_allowed")


async def test_healthz_and_readyz(api: httpx.AsyncClient) -> None:
    health = await api.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
