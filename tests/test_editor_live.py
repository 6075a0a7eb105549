"""The desk's live stream and the readers count: across processes, through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from livefeed import limits
from livefeed.settings import Settings
from livefeed.storage.presence import Presence, ReaderCounts
from tests.conftest import LiveServer
from tests.editor_support import (
    EditorBrowser,
    serve_second_server,  # noqa: F401 (the fixture)
    signed_in,
)
from tests.helpers import TIMEOUT, auth, subscribe, wait_for
from tests.test_api import ARTICLE, assert_error


@pytest.fixture(autouse=True)
def quick_presence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Report and send reader counts every 0.1 s instead of every few seconds."""
    monkeypatch.setattr(limits, "PRESENCE_INTERVAL", 0.1)


class DeskStream:
    """An editor's ``/editor/live``, read record by record."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, wanted: str | None = None) -> tuple[str, Any]:
        """The next record (of type ``wanted``, skipping others)."""

        async def read() -> tuple[str, Any]:
            event = None
            async for line in self.lines:
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: ") and event is not None:
                    if wanted is None or event == wanted:
                        return event, json.loads(line[len("data: ") :])
                    event = None
            raise AssertionError("the desk stream ended")

        return await asyncio.wait_for(read(), TIMEOUT)


@contextlib.asynccontextmanager
async def desk_stream(browser: EditorBrowser) -> AsyncIterator[DeskStream]:
    async with browser.client.stream("GET", "/editor/live") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        yield DeskStream(response)


async def test_desk_stream_needs_a_signed_in_editor_and_the_sites_origin(
    live_server: LiveServer,
) -> None:
    async with EditorBrowser(live_server) as stranger:
        assert_error(await stranger.get("/editor/live"), 401, "unauthorized")
    async with await signed_in(live_server) as browser:
        foreign = await browser.get("/editor/live", headers={"Origin": "https://evil.example"})
        assert_error(foreign, 403, "forbidden_origin")


async def test_desk_stream_shows_new_comments_and_credits_from_any_process(
    live_server: LiveServer, second_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await api.put("/api/articles/talks", json=ARTICLE, headers=auth(live_server.token))
    async with await signed_in(live_server) as browser, desk_stream(browser) as stream:
        kind, hello = await stream.next()
        assert kind == "hello" and hello["latest_comment"] is None
        # A reader comments through the other process.
        async with second_server.client() as other:
            posted = await other.post(
                "/api/articles/talks/comments", json={"author": "Ann", "text": "Hi"}
            )
        _, comment = await stream.next("comment.created")
        assert comment["id"] == posted.json()["id"] and comment["hidden"] is False
        hidden = await browser.post(f"/editor/articles/talks/comments/{comment['id']}/hide")
        assert hidden.status_code == 200
        _, credit = await stream.next("credit")
        assert credit["editor"] == "alice" and credit["action"] == "hidden"
        assert credit["id"] == f"talks/{comment['id']}"
        _, readers = await stream.next("readers")
        assert readers["latest_comment"] == f"talks/{comment['id']}"


async def test_desk_stream_ends_when_the_editor_signs_out(live_server: LiveServer) -> None:
    async with await signed_in(live_server) as browser, desk_stream(browser) as stream:
        await stream.next("hello")
        session = browser.client.cookies.get("livefeed_session")
        assert session
        await live_server.services.sessions.end(session.rsplit(".", 1)[0])
        await stream.next("signed-out")


async def test_signing_out_or_a_new_password_ends_open_desk_streams_at_once(
    live_server: LiveServer, second_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "PRESENCE_INTERVAL", 60.0)  # no periodic check to help
    async with (
        await signed_in(live_server, "alice") as alice,
        await signed_in(second_server, "bob") as bob,
        desk_stream(alice) as alice_stream,
        desk_stream(bob) as bob_stream,
    ):
        await alice_stream.next("hello")
        await bob_stream.next("hello")
        # Alice signs out through the other process; Bob's password is changed.
        cookie = str(alice.client.cookies.get("livefeed_session"))
        async with EditorBrowser(second_server) as same_alice:
            same_alice.client.cookies.set("livefeed_session", cookie, path="/editor")
            response = await same_alice.post("/editor/logout", {"csrf": alice.csrf}, json=False)
            assert response.status_code == 303
        await alice_stream.next("signed-out")
        await live_server.services.editors.set_password("bob", "another long passphrase")
        await bob_stream.next("signed-out")


async def test_readers_are_counted_across_processes_and_per_article(
    live_server: LiveServer, second_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await api.put("/api/articles/talks", json=ARTICLE, headers=auth(live_server.token))
    presence: Presence = live_server.services.presence

    async def counts() -> ReaderCounts:
        return await presence.read()

    async with (
        websockets.connect(live_server.ws_url) as one,
        websockets.connect(second_server.ws_url) as two,
        websockets.connect(second_server.ws_url) as three,
    ):
        for ws in (one, two):
            await subscribe(ws, "briefs")
            await subscribe(ws, "article:talks")
        await subscribe(three, "briefs")

        async def three_readers_two_on_talks() -> bool:
            found = await counts()
            return found.total == 3 and found.articles == {"talks": 2}

        await wait_for(three_readers_two_on_talks, what="the counts of both processes")
        async with await signed_in(live_server) as browser:
            page = await browser.get("/editor/articles")
            assert 'data-readers-article="talks">2<' in page.text

    async def nobody() -> bool:
        return (await counts()).total == 0

    await wait_for(nobody, what="the readers to be gone")


async def test_a_stopped_process_no_longer_counts(
    live_server: LiveServer, settings: Settings
) -> None:
    other = LiveServer(settings)
    await other.start()
    async with websockets.connect(other.ws_url) as ws:
        await subscribe(ws, "briefs")
        presence: Presence = live_server.services.presence

        async def counted(n: int) -> bool:
            return (await presence.read()).total == n

        await wait_for(lambda: counted(1), what="the other process's reader")
    await other.stop()
    await wait_for(lambda: counted(0), what="the stopped process to withdraw")


async def test_a_vanished_process_stops_counting_when_its_report_is_stale(
    live_server: LiveServer,
) -> None:
    presence: Presence = live_server.services.presence
    ghost = Presence(live_server.services.redis, live_server.services.keys)
    await ghost.report(ReaderCounts(7, {"talks": 7}))
    assert (await presence.read()).total == 7
    redis = live_server.services.redis
    key = live_server.services.keys.desk_readers()
    record = json.loads(await redis.hget(key, ghost.process))
    record["at"] -= limits.PRESENCE_STALE + 1
    await redis.hset(key, ghost.process, json.dumps(record))
    assert (await presence.read()).total == 0
    assert await redis.hget(key, ghost.process) is None
