"""The editor pages as a browser talks to them (httpx, no JavaScript): signing in, the
session cookie, CSRF, lockout, and every desk form."""

from __future__ import annotations

import re
from ipaddress import ip_network

import httpx
import pytest

from livefeed import limits
from livefeed.settings import Settings
from tests.conftest import LiveServer
from tests.editor_support import PASSWORD, EditorBrowser, add_editor, form_csrf, signed_in
from tests.helpers import auth
from tests.test_api import ARTICLE, assert_error


async def make_article(
    live_server: LiveServer, api: httpx.AsyncClient, slug: str = "talks"
) -> None:
    response = await api.put(f"/api/articles/{slug}", json=ARTICLE, headers=auth(live_server.token))
    assert response.status_code in (200, 201)


# -- signing in ---------------------------------------------------------------------------


async def test_desk_sends_strangers_to_sign_in(live_server: LiveServer) -> None:
    async with EditorBrowser(live_server) as browser:
        response = await browser.get("/editor/comments?x=1")
        assert response.status_code == 303
        assert response.headers["location"] == "/editor/login?next=/editor/comments%3Fx%3D1"
        data = await browser.get("/editor/data/briefs")
        assert_error(data, 401, "unauthorized")


async def test_sign_in_sets_a_safe_session_cookie_and_opens_the_desk(
    live_server: LiveServer,
) -> None:
    await add_editor(live_server, "alice")
    async with EditorBrowser(live_server) as browser:
        response = await browser.try_login("Alice ", PASSWORD)  # names are case-insensitive
        assert response.status_code == 303
        assert response.headers["location"] == "/editor"
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("livefeed_session=")
        )
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "samesite"} <= attributes
        assert "path=/editor" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert "secure" not in attributes  # plain HTTP here; HTTPS adds it
        desk = await browser.get("/editor")
        assert desk.status_code == 200
        assert 'Signed in as <strong data-desk="editor">alice</strong>' in desk.text
        assert desk.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in desk.headers["content-security-policy"]


async def test_cookie_is_secure_behind_https(settings: Settings) -> None:
    # The proxy (loopback here) must be trusted for its X-Forwarded-Proto to count.
    live_server = LiveServer(settings.with_(trusted_proxies=(ip_network("127.0.0.1/32"),)))
    await live_server.start()
    try:
        await _secure_sign_in(live_server)
    finally:
        await live_server.stop()


async def _secure_sign_in(live_server: LiveServer) -> None:
    await add_editor(live_server, "alice")
    https = {"X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=live_server.url, headers=https) as client:
        page = await client.get("/editor/login")
        login_cookie = page.headers["set-cookie"]
        assert "secure" in login_cookie.lower()
        response = await client.post(
            "/editor/login",
            data={"name": "alice", "password": PASSWORD, "csrf": form_csrf(page.text)},
            # httpx keeps Secure cookies for https URLs: hand this one over by hand.
            headers={"Cookie": login_cookie.split(";")[0]},
        )
    assert response.status_code == 303, response.text
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("livefeed_session="))
    assert "secure" in session.lower()


async def test_wrong_password_and_unknown_name_get_the_same_answer(
    live_server: LiveServer,
) -> None:
    await add_editor(live_server, "alice")
    async with EditorBrowser(live_server) as browser:
        wrong = await browser.try_login("alice", "not the password")
        unknown = await browser.try_login("mallory", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong name or password." in wrong.text

    def without_name(html: str) -> str:
        html = re.sub(r'name="csrf" value="[^"]+"', "", html)
        return html.replace('value="alice"', "").replace('value="mallory"', "")

    assert without_name(wrong.text) == without_name(unknown.text)
    assert "livefeed_session" not in str(wrong.headers.get_list("set-cookie"))


async def test_operator_signs_in_with_the_operator_token(live_server: LiveServer) -> None:
    async with EditorBrowser(live_server) as browser:
        await browser.login("operator", live_server.token)
        response = await browser.post("/editor/briefs", {"text": "From the operator"})
        assert response.status_code == 201
        assert response.json()["credits"] == {"published": "operator"}
    async with EditorBrowser(live_server) as browser:
        assert (await browser.try_login("operator", "guess")).status_code == 401


async def test_sign_in_form_needs_its_own_csrf_token(live_server: LiveServer) -> None:
    await add_editor(live_server, "alice")
    async with EditorBrowser(live_server) as browser:
        response = await browser.client.post(
            "/editor/login", data={"name": "alice", "password": PASSWORD, "csrf": "forged"}
        )
        assert response.status_code == 403
        assert "livefeed_session" not in str(response.headers.get_list("set-cookie"))


async def test_sign_in_only_goes_on_to_desk_pages(live_server: LiveServer) -> None:
    await add_editor(live_server, "alice")
    async with EditorBrowser(live_server) as browser:
        page = await browser.get("/editor/login?next=//evil.example/")
        assert 'name="next" value="/editor"' in page.text
        response = await browser.client.post(
            "/editor/login",
            data={
                "name": "alice",
                "password": PASSWORD,
                "csrf": form_csrf(page.text),
                "next": "https://evil.example/",
            },
        )
        assert response.headers["location"] == "/editor"


# -- lockout --------------------------------------------------------------------------------


async def test_repeated_wrong_passwords_lock_the_name_whether_or_not_it_exists(
    live_server: LiveServer,
) -> None:
    await add_editor(live_server, "alice")
    async with EditorBrowser(live_server) as browser:
        for name in ("alice", "nobody"):
            for _ in range(limits.LOGIN_FAILURES_PER_NAME):
                assert (await browser.try_login(name, "wrong guess")).status_code == 401
            locked = await browser.try_login(name, PASSWORD if name == "alice" else "x")
            assert locked.status_code == 429, name
            assert int(locked.headers["retry-after"]) > 0
            assert "too many sign-in attempts" in locked.text
        # Other names are not locked by that.
        await add_editor(live_server, "bob")
        await browser.login("bob")


async def test_a_successful_sign_in_clears_the_names_count(live_server: LiveServer) -> None:
    await add_editor(live_server, "alice")
    async with EditorBrowser(live_server) as browser:
        for _ in range(limits.LOGIN_FAILURES_PER_NAME - 1):
            await browser.try_login("alice", "wrong guess")
        await browser.login("alice")
    async with EditorBrowser(live_server) as browser:
        for _ in range(limits.LOGIN_FAILURES_PER_NAME - 1):
            assert (await browser.try_login("alice", "wrong guess")).status_code == 401
        await browser.login("alice")


async def test_one_address_guessing_many_names_is_slowed_down(live_server: LiveServer) -> None:
    await add_editor(live_server, "alice")
    async with EditorBrowser(live_server) as browser:
        for i in range(limits.LOGIN_FAILURES_PER_ADDRESS):
            assert (await browser.try_login(f"name{i}", "guess")).status_code == 401
        assert (await browser.try_login("alice", PASSWORD)).status_code == 429


# -- sessions -------------------------------------------------------------------------------


async def test_sign_out_ends_the_session_everywhere_it_was_copied(live_server: LiveServer) -> None:
    async with await signed_in(live_server) as browser:
        cookie = browser.client.cookies.get("livefeed_session")
        response = await browser.post("/editor/logout", json=False)
        assert response.status_code == 303
        assert (await browser.get("/editor")).status_code == 303
    async with EditorBrowser(live_server) as thief:
        thief.client.cookies.set("livefeed_session", str(cookie), path="/editor")
        assert (await thief.get("/editor")).status_code == 303


async def test_a_forged_or_altered_cookie_is_refused(live_server: LiveServer) -> None:
    async with await signed_in(live_server) as browser:
        cookie = str(browser.client.cookies.get("livefeed_session"))
    value, mac = cookie.rsplit(".", 1)

    def other(char: str) -> str:
        return "B" if char == "A" else "A"

    altered_mac = f"{value}.{other(mac[0])}{mac[1:]}"
    altered_value = f"{other(value[0])}{value[1:]}.{mac}"
    for forged in (value, altered_mac, altered_value, "a.b", ""):
        async with EditorBrowser(live_server) as stranger:
            stranger.client.cookies.set("livefeed_session", forged, path="/editor")
            assert (await stranger.get("/editor")).status_code == 303, forged


async def test_new_password_or_removed_account_signs_browsers_out(
    live_server: LiveServer,
) -> None:
    editors = live_server.services.editors
    async with (
        await signed_in(live_server, "alice") as alice,
        await signed_in(live_server, "bob") as bob,
    ):
        await editors.set_password("alice", "a new long passphrase")
        await editors.remove("bob")
        for browser in (alice, bob):
            assert (await browser.get("/editor")).status_code == 303
            assert_error(await browser.post("/editor/briefs", {"text": "x"}), 401)


# -- CSRF and same-site checks on every write ------------------------------------------------

WRITES = [
    ("/editor/briefs", {"text": "A brief"}),
    ("/editor/briefs/{brief}", {"text": "Corrected"}),
    ("/editor/briefs/{brief}/retract", {}),
    ("/editor/articles", {"slug": "new-one", "title": "T", "summary": "S", "body": "B"}),
    ("/editor/articles/talks", {"title": "T", "summary": "S", "body": "B"}),
    ("/editor/articles/talks/comments", {"closed": "1"}),
    ("/editor/articles/talks/comments/{comment}/hide", {}),
    ("/editor/logout", {}),
]


@pytest.fixture
async def targets(live_server: LiveServer, api: httpx.AsyncClient) -> dict[str, str]:
    await make_article(live_server, api)
    brief = await api.post("/api/briefs", json={"text": "x"}, headers=auth(live_server.token))
    comment = await api.post("/api/articles/talks/comments", json={"author": "A", "text": "B"})
    return {"brief": brief.json()["id"], "comment": comment.json()["id"]}


@pytest.mark.parametrize(("path", "fields"), WRITES)
async def test_every_write_needs_a_session(
    live_server: LiveServer, targets: dict[str, str], path: str, fields: dict[str, str]
) -> None:
    async with EditorBrowser(live_server) as stranger:
        response = await stranger.post(path.format(**targets), {**fields, "csrf": "anything"})
        assert_error(response, 401, "unauthorized")
        plain = await stranger.post(path.format(**targets), {**fields}, json=False)
        assert plain.status_code == 303 and plain.headers["location"] == "/editor/login"


@pytest.mark.parametrize(("path", "fields"), WRITES)
async def test_every_write_needs_the_sessions_csrf_token(
    live_server: LiveServer, targets: dict[str, str], path: str, fields: dict[str, str]
) -> None:
    async with (
        await signed_in(live_server, "alice") as alice,
        await signed_in(live_server, "bob") as bob,
    ):
        url = path.format(**targets)
        for token in ("", "forged", bob.csrf):
            response = await alice.post(url, {**fields, "csrf": token})
            assert_error(response, 403, "csrf_failed")
        page = await alice.post(url, {**fields, "csrf": "forged"}, json=False)
        assert page.status_code == 403 and "has expired" in page.text
        # Nothing happened: the brief is there and unchanged, the desk is still signed in.
        brief = await alice.client.get("/api/briefs")
        assert brief.json()["items"][0]["text"] == "x"
        assert (await alice.get("/editor")).status_code == 200


async def test_the_csrf_token_may_come_as_a_header(live_server: LiveServer) -> None:
    async with await signed_in(live_server) as browser:
        response = await browser.client.post(
            "/editor/briefs",
            data={"text": "Header token"},
            headers={"X-CSRF-Token": browser.csrf, "Accept": "application/json"},
        )
        assert response.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
)
async def test_cross_site_writes_are_refused_even_with_the_token(
    live_server: LiveServer, headers: dict[str, str]
) -> None:
    async with await signed_in(live_server) as browser:
        response = await browser.post("/editor/briefs", {"text": "x"}, headers=headers)
        assert_error(response, 403)
        own = await browser.post(
            "/editor/briefs", {"text": "x"}, headers={"Origin": live_server.url}
        )
        assert own.status_code == 201


# -- the forms, without JavaScript ----------------------------------------------------------


async def test_publish_correct_and_retract_with_plain_forms(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await make_article(live_server, api)
    async with await signed_in(live_server) as browser:
        published = await browser.post(
            "/editor/briefs",
            {"text": "Talks\r\nended", "breaking": "1", "article": "talks"},
            json=False,
        )
        assert published.status_code == 303
        brief = (await api.get("/api/briefs")).json()["items"][0]
        assert brief["text"] == "Talks ended" and brief["breaking"] and brief["article"] == "talks"
        assert published.headers["location"] == f"/editor?done=published#brief-{brief['id']}"
        desk = await browser.get(published.headers["location"])
        assert "Published." in desk.text and "by alice" in desk.text

        form = await browser.get(f"/editor/briefs/{brief['id']}/correct")
        assert form.status_code == 200 and "Talks ended" in form.text
        corrected = await browser.post(
            f"/editor/briefs/{brief['id']}",
            {"text": "Talks ended late", "article": "talks", "base": brief["updated_at"]},
            json=False,
        )
        assert corrected.status_code == 303
        now = (await api.get("/api/briefs")).json()["items"][0]
        assert now["text"] == "Talks ended late" and now["breaking"] is False
        assert "corrected by alice" in (await browser.get("/editor")).text

        stale = await browser.post(
            f"/editor/briefs/{brief['id']}",
            {"text": "Someone else's view", "base": brief["updated_at"]},
            json=False,
        )
        assert stale.status_code == 409 and "changed by alice" in stale.text

        confirm = await browser.get(f"/editor/briefs/{brief['id']}/retract")
        assert "Retract this brief?" in confirm.text
        retracted = await browser.post(f"/editor/briefs/{brief['id']}/retract", json=False)
        assert retracted.headers["location"] == "/editor?done=retracted"
        assert (await api.get("/api/briefs")).json()["items"] == []
        assert_error(await browser.post(f"/editor/briefs/{brief['id']}/retract"), 404)


async def test_an_invalid_brief_comes_back_with_the_text_and_the_reason(
    live_server: LiveServer,
) -> None:
    async with await signed_in(live_server) as browser:
        too_long = "x" * (limits.BRIEF_TEXT_MAX + 1)
        page = await browser.post("/editor/briefs", {"text": too_long}, json=False)
        assert page.status_code == 422
        assert "longer than 500 characters" in page.text and too_long in page.text
        assert_error(await browser.post("/editor/briefs", {"text": "   "}), 422, "invalid")


async def test_articles_create_edit_and_refuse_to_overwrite(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    async with await signed_in(live_server) as browser:
        created = await browser.post(
            "/editor/articles",
            {
                "slug": "moscow-talks",
                "title": "Talks in Moscow",
                "summary": "Leaders met.",
                "body": "First paragraph.\r\n\r\nSecond\r\nparagraph.\n\n\n",
            },
            json=False,
        )
        assert created.headers["location"] == "/editor/articles/moscow-talks/edit?done=created"
        article = (await api.get("/api/articles/moscow-talks")).json()
        assert article["body"] == ["First paragraph.", "Second\nparagraph."]

        again = await browser.post(
            "/editor/articles",
            {"slug": "moscow-talks", "title": "T", "summary": "S", "body": "B"},
        )
        assert_error(again, 409, "conflict")
        bad = await browser.post(
            "/editor/articles", {"slug": "Not A Slug", "title": "T", "summary": "S", "body": ""}
        )
        assert_error(bad, 422)

        edit = await browser.get("/editor/articles/moscow-talks/edit")
        assert "Talks in Moscow" in edit.text and "by alice" in edit.text
        fields = {
            "title": "Talks end",
            "summary": "Done.",
            "body": "One.",
            "base": article["updated_at"],
        }
        saved = await browser.post("/editor/articles/moscow-talks", fields)
        assert saved.status_code == 200 and saved.json()["title"] == "Talks end"
        stale = await browser.post("/editor/articles/moscow-talks", fields)
        assert_error(stale, 409)
        listing = await browser.get("/editor/articles")
        assert "Talks end" in listing.text and "updated by alice" in listing.text


async def test_closed_comments_refuse_new_ones_with_a_clear_error(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await make_article(live_server, api)
    comment = {"author": "Ann", "text": "First!"}
    assert (await api.post("/api/articles/talks/comments", json=comment)).status_code == 201
    async with await signed_in(live_server) as browser:
        closed = await browser.post("/editor/articles/talks/comments", {"closed": "1"})
        assert closed.json() == {"article": "talks", "closed": True, "by": "alice"}
        refused = await api.post("/api/articles/talks/comments", json=comment)
        assert_error(refused, 403, "comments_closed")
        assert "closed" in refused.json()["error"]["message"]
        form = await api.post(
            "/articles/talks/comments",
            data=comment,
            headers={"Accept": "text/html"},
        )
        assert form.status_code == 403 and "comments are closed" in form.text
        # The comments posted before stay readable.
        assert len((await api.get("/api/articles/talks/comments")).json()["items"]) == 1
        listing = await browser.get("/editor/articles")
        assert "Open comments" in listing.text

        opened = await browser.post(
            "/editor/articles/talks/comments", {"closed": "0", "back": "comments"}, json=False
        )
        assert opened.headers["location"] == "/editor/comments?done=opened"
        assert (await api.post("/api/articles/talks/comments", json=comment)).status_code == 201


async def test_moderation_lists_comments_across_articles_and_keeps_hidden_ones(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await make_article(live_server, api, "talks")
    await make_article(live_server, api, "markets")
    first = await api.post("/api/articles/talks/comments", json={"author": "Ann", "text": "One"})
    second = await api.post(
        "/api/articles/markets/comments", json={"author": "Ben", "text": "<b>Two</b>"}
    )
    async with await signed_in(live_server) as browser:
        page = await browser.get("/editor/comments")
        assert page.text.index("&lt;b&gt;Two&lt;/b&gt;") < page.text.index(">One<")
        hidden = await browser.post(
            f"/editor/articles/talks/comments/{first.json()['id']}/hide", json=False
        )
        assert hidden.status_code == 303
        assert [
            c["id"] for c in (await api.get("/api/articles/talks/comments")).json()["items"]
        ] == []
        data = (await browser.get("/editor/data/comments")).json()
        assert [(c["text"], c["hidden"], c["hidden_by"]) for c in data["items"]] == [
            ("<b>Two</b>", False, None),
            ("One", True, "alice"),
        ]
        assert data["items"][1]["ref"] == f"talks/{first.json()['id']}"
        assert second.status_code == 201
        again = await browser.post(f"/editor/articles/talks/comments/{first.json()['id']}/hide")
        assert_error(again, 404)
