"""The JSON API with editors' own tokens: who wrote is recorded for the desk, never shown
to readers; a revoked token or a removed editor is refused at once (401)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import websockets

from tests.conftest import LiveServer
from tests.editor_support import PASSWORD, EditorBrowser, add_editor, new_token, signed_in
from tests.helpers import auth, recv_json, subscribe
from tests.test_api import ARTICLE, assert_error


async def test_an_editors_token_publishes_and_the_desk_credits_them(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await add_editor(live_server, "alice")
    token = await new_token(live_server, "alice")
    published = await api.post("/api/briefs", json={"text": "Talks ended"}, headers=auth(token))
    assert published.status_code == 201, published.text
    brief = published.json()
    corrected = await api.patch(
        f"/api/briefs/{brief['id']}", json={"text": "Talks ended late"}, headers=auth(token)
    )
    assert corrected.status_code == 200
    put = await api.put("/api/articles/talks", json=ARTICLE, headers=auth(live_server.token))
    assert put.status_code == 201

    desk = live_server.services.desk
    assert (await desk.credits("brief", [brief["id"]]))[brief["id"]] == {
        "published": "alice",
        "corrected": "alice",
    }
    assert (await desk.credits("article", ["talks"]))["talks"] == {"created": "operator"}


async def test_readers_never_see_who_wrote(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    await add_editor(live_server, "alice")
    token = await new_token(live_server, "alice")
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        response = await api.post("/api/briefs", json={"text": "A brief"}, headers=auth(token))
        event = await recv_json(ws)
    listing = (await api.get("/api/briefs")).json()
    for seen in (response.json(), event, listing):
        assert "alice" not in json.dumps(seen)
        assert "credits" not in json.dumps(seen)


async def test_revoked_token_and_removed_editor_are_refused(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    editors = live_server.services.editors
    await add_editor(live_server, "alice")
    await add_editor(live_server, "bob")
    alice_token, alice_info = await editors.new_token("alice")
    bob_token = await new_token(live_server, "bob")
    body = {"text": "A brief"}
    assert (await api.post("/api/briefs", json=body, headers=auth(alice_token))).status_code == 201

    await editors.revoke_token("alice", alice_info.id)
    refused = await api.post("/api/briefs", json=body, headers=auth(alice_token))
    assert_error(refused, 401, "unauthorized")
    assert (await api.post("/api/briefs", json=body, headers=auth(bob_token))).status_code == 201

    await editors.remove("bob")
    assert_error(await api.post("/api/briefs", json=body, headers=auth(bob_token)), 401)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer lf_00000000_" + "A" * 43,
        "Bearer " + "x" * 5000,
    ],
)
async def test_writes_without_a_valid_token_are_401(
    live_server: LiveServer, api: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await api.post("/api/briefs", json={"text": "x"}, headers=headers)
    assert_error(response, 401, "unauthorized")


async def test_a_session_cookie_is_no_api_credential(live_server: LiveServer) -> None:
    """The API takes bearer tokens only, so no other site can make a browser write there."""
    async with await signed_in(live_server) as browser:
        response = await browser.client.post(
            "/api/briefs", json={"text": "Cookie only"}, headers={"Cookie": "x=y"}
        )
        assert_error(response, 401)
        # Even with the session cookie sent explicitly on the API path:
        cookie = browser.client.cookies.get("livefeed_session")
        assert cookie
        response = await browser.client.post(
            "/api/briefs",
            json={"text": "Cookie only"},
            headers={"Cookie": f"livefeed_session={cookie}"},
        )
        assert_error(response, 401)


async def test_hiding_a_comment_through_the_api_is_credited(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await add_editor(live_server, "alice")
    token = await new_token(live_server, "alice")
    await api.put("/api/articles/talks", json=ARTICLE, headers=auth(token))
    comment = (
        await api.post("/api/articles/talks/comments", json={"author": "Ann", "text": "Hm"})
    ).json()
    hidden = await api.delete(f"/api/articles/talks/comments/{comment['id']}", headers=auth(token))
    assert hidden.status_code == 204
    ref = f"talks/{comment['id']}"
    assert (await live_server.services.desk.credits("comment", [ref]))[ref] == {"hidden": "alice"}


async def test_tokens_and_passwords_never_reach_the_logs(
    live_server: LiveServer, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="livefeed")
    await add_editor(live_server, "alice")
    token = await new_token(live_server, "alice")
    await api.post("/api/briefs", json={"text": "Logged?"}, headers=auth(token))
    await api.post("/api/briefs", json={"text": "Logged?"}, headers=auth(token + "x"))
    async with EditorBrowser(live_server) as browser:
        await browser.try_login("alice", "a wrong password, typed")
        await browser.try_login("a password in the name field", PASSWORD)
    async with EditorBrowser(live_server) as browser:
        await browser.login("alice")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "alice signed in" in text
    for secret in (token, PASSWORD, "a wrong password", "a password in the name field"):
        assert secret not in text


async def test_a_publish_that_already_ran_is_a_success_not_a_conflict(
    live_server: LiveServer,
) -> None:
    """A fresh id that exists already can only be this write's own earlier run (the client
    retried after the answer was lost)."""
    from livefeed import models
    from livefeed.storage.content import API

    desk = live_server.services.desk
    brief = models.new_brief({"text": "Once"})
    first = await desk.publish_brief(brief, "alice", API)
    again = await desk.publish_brief(brief, "alice", API)
    assert again == first
