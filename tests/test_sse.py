"""/events as a browser's EventSource uses it: streamed httpx against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from livefeed.events import decode_cursor, encode_cursor
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth, recv_json, subscribe, wait_for

# Every live-server test runs with the livefeed.frames fast path and with plain ASGI send.
pytestmark = pytest.mark.both_write_paths

ARTICLE = {"title": "Xi and Putin held talks", "summary": "In Moscow.", "body": ["One."]}


@dataclass
class Record:
    """One SSE record: its ``event``, ``id`` and ``data`` (lines joined by newlines)."""

    event: str | None
    id: str | None
    data: str

    @property
    def json(self) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self.data)
        return obj


_CLOSED = object()


class Stream:
    """An open ``/events`` response, its records read in the background into a queue."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._records: asyncio.Queue[Record | object] = asyncio.Queue()
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        fields: dict[str, list[str]] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "event" in fields or "data" in fields:
                        self._records.put_nowait(
                            Record(
                                event=fields.get("event", [None])[-1],
                                id=fields.get("id", [None])[-1],
                                data="\n".join(fields.get("data", [])),
                            )
                        )
                    fields = {}
                elif line.startswith(":"):
                    continue  # a comment: the heartbeat
                else:
                    name, _, value = line.partition(":")
                    fields.setdefault(name, []).append(value.removeprefix(" "))
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self._records.put_nowait(_CLOSED)

    async def next(self, timeout: float = TIMEOUT) -> Record:
        item = await asyncio.wait_for(self._records.get(), timeout)
        if not isinstance(item, Record):
            raise AssertionError("the stream ended while a record was expected")
        return item

    async def until_subscribed(self, count: int = 1) -> list[Record]:
        """The records up to and including the ``count``-th ``subscribed``."""
        records = []
        while count:
            record = await self.next()
            records.append(record)
            if record.event == "subscribed":
                count -= 1
        return records

    async def expect_silence(self, seconds: float = 0.3) -> None:
        try:
            item = await asyncio.wait_for(self._records.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected no record, got {item!r}")

    async def ended(self, timeout: float = TIMEOUT) -> bool:
        """True once the server has ended the stream (every record before is dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = await asyncio.wait_for(self._records.get(), deadline - time.monotonic())
            except TimeoutError:
                return False
            if item is _CLOSED:
                return True
        return False

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._task


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    topics: list[str],
    *,
    since: str | None = None,
    last_event_id: str | None = None,
) -> AsyncIterator[Stream]:
    params: list[tuple[str, str]] = [("topic", t) for t in topics]
    if since is not None:
        params.append(("since", since))
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", "/events", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        stream = Stream(response)
        try:
            yield stream
        finally:
            await stream.close()


async def publish(api: httpx.AsyncClient, token: str, text: str) -> dict[str, Any]:
    response = await api.post("/api/briefs", json={"text": text}, headers=auth(token))
    assert response.status_code == 201, response.text
    brief: dict[str, Any] = response.json()
    return brief


async def post_comment(api: httpx.AsyncClient, slug: str, text: str) -> dict[str, Any]:
    response = await api.post(
        f"/api/articles/{slug}/comments", json={"author": "Reader", "text": text}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def article(live_server: LiveServer, api: httpx.AsyncClient) -> str:
    response = await api.put("/api/articles/xi", json=ARTICLE, headers=auth(live_server.token))
    assert response.status_code == 201
    return "xi"


# -- opening a stream ------------------------------------------------------------------------


async def test_stream_headers_and_the_first_record(api: httpx.AsyncClient) -> None:
    async with open_stream(api, ["briefs"]) as stream:
        headers = stream.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-store"
        assert headers.get("x-accel-buffering") == "no"
        # A stream has no length: "Content-Length: 0" would end it before the first record.
        assert "content-length" not in headers, headers
        first = await stream.next()
        assert first.event == "subscribed"
        assert first.json == {"type": "subscribed", "topic": "briefs", "recovered": True}
        assert first.id


async def test_one_subscribed_record_per_topic(api: httpx.AsyncClient, article: str) -> None:
    async with open_stream(api, ["briefs", f"comments:{article}", f"article:{article}"]) as s:
        records = [await s.next() for _ in range(3)]
    assert [r.event for r in records] == ["subscribed"] * 3
    assert [r.json["topic"] for r in records] == ["briefs", "comments:xi", "article:xi"]
    assert all(r.json["recovered"] is True for r in records)


async def test_a_published_brief_arrives_as_on_the_websocket(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    async with (
        open_stream(api, ["briefs"]) as stream,
        websockets.connect(live_server.ws_url) as ws,
    ):
        await stream.until_subscribed()
        await subscribe(ws, "briefs")
        brief = await publish(api, live_server.token, "Wildfires force 26,000 to evacuate")
        frame = await recv_json(ws)
        record = await stream.next()
        assert record.event == "brief.published"
        assert record.id
        assert record.json == frame
        assert record.json["data"] == brief
        await stream.expect_silence()


async def test_updates_and_retractions_arrive(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    brief = await publish(api, live_server.token, "Quary collapse")
    async with open_stream(api, ["briefs"]) as stream:
        await stream.until_subscribed()
        url = f"/api/briefs/{brief['id']}"
        await api.patch(url, json={"text": "Quarry collapse"}, headers=auth(live_server.token))
        await api.delete(url, headers=auth(live_server.token))
        updated, deleted = await stream.next(), await stream.next()
    assert updated.event == "brief.updated"
    assert updated.json["data"]["text"] == "Quarry collapse"
    assert deleted.event == "brief.deleted"
    assert deleted.json["data"]["id"] == brief["id"]


async def test_a_stream_gets_only_its_topics(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    put = await api.put("/api/articles/other", json=ARTICLE, headers=auth(live_server.token))
    assert put.status_code == 201
    async with open_stream(api, [f"comments:{article}"]) as stream:
        await stream.until_subscribed()
        await publish(api, live_server.token, "a brief")
        await post_comment(api, "other", "elsewhere")
        mine = await post_comment(api, article, "here")
        record = await stream.next()
        assert record.event == "comment.created"
        assert record.json["data"] == mine
        await stream.expect_silence()


# -- resuming --------------------------------------------------------------------------------


async def away_while_published(
    api: httpx.AsyncClient, token: str, count: int
) -> tuple[str, list[dict[str, Any]]]:
    """A reader sees one brief and leaves; ``count`` briefs are published while it is away.
    Its last event id and the briefs it missed."""
    async with open_stream(api, ["briefs"]) as stream:
        await stream.until_subscribed()
        await publish(api, token, "seen")
        cursor = (await stream.next()).id
    assert cursor
    return cursor, [await publish(api, token, f"missed {i}") for i in range(count)]


# EventSource resumes with the Last-Event-ID header; ?since= does the same for a first
# connection (SPEC), which is how our client, owning its reconnects, always resumes.
@pytest.mark.parametrize("resume_with", ["last_event_id", "since"])
async def test_last_event_id_or_since_replays_exactly_the_missed_briefs(
    live_server: LiveServer, api: httpx.AsyncClient, resume_with: str
) -> None:
    cursor, missed = await away_while_published(api, live_server.token, 4)
    async with open_stream(api, ["briefs"], **{resume_with: cursor}) as stream:
        records = await stream.until_subscribed()
        assert [r.event for r in records] == ["brief.published"] * 4 + ["subscribed"]
        assert [r.json["data"] for r in records[:-1]] == missed
        assert records[-1].json == {"type": "subscribed", "topic": "briefs", "recovered": True}
        ids = [r.id for r in records]
        assert all(ids) and len(set(ids[:-1])) == 4
        live = await publish(api, live_server.token, "live again")
        assert (await stream.next()).json["data"] == live
        await stream.expect_silence()


async def test_the_cursor_of_the_subscribed_record_resumes_too(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    topics = ["briefs", f"comments:{article}"]
    async with open_stream(api, topics) as stream:
        cursor = (await stream.until_subscribed(2))[-1].id
    assert cursor
    brief = await publish(api, live_server.token, "while away")
    created = await post_comment(api, article, "while away")
    async with open_stream(api, topics, last_event_id=cursor) as stream:
        records = await stream.until_subscribed(2)
    events = [r for r in records if r.event != "subscribed"]
    assert [r.json["data"] for r in events] == [brief, created]


async def test_one_cursor_resumes_several_topics(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    topics = ["briefs", f"comments:{article}"]
    async with open_stream(api, topics) as stream:
        await stream.until_subscribed(2)
        await publish(api, live_server.token, "seen brief")
        await post_comment(api, article, "seen comment")
        await publish(api, live_server.token, "seen brief 2")
        seen = [await stream.next() for _ in range(3)]
        assert [r.event for r in seen] == ["brief.published", "comment.created", "brief.published"]
        cursor = seen[-1].id
    assert cursor
    briefs = [await publish(api, live_server.token, f"missed brief {i}") for i in range(2)]
    comments = [await post_comment(api, article, f"missed comment {i}") for i in range(3)]
    async with open_stream(api, topics, last_event_id=cursor) as stream:
        records = await stream.until_subscribed(2)
        by_topic: dict[str, list[Record]] = {}
        for record in records:
            if record.event != "subscribed":
                by_topic.setdefault(record.json["topic"], []).append(record)
        assert [r.json["data"] for r in by_topic["briefs"]] == briefs
        assert [r.json["data"] for r in by_topic[f"comments:{article}"]] == comments
        subscribed = [r.json for r in records if r.event == "subscribed"]
        assert sorted(s["topic"] for s in subscribed) == sorted(topics)
        assert all(s["recovered"] is True for s in subscribed)
        # The newest cursor still covers both topics: a second reconnect replays nothing.
        latest = records[-1].id
        await stream.expect_silence()
    assert latest
    async with open_stream(api, topics, last_event_id=latest) as stream:
        again = await stream.until_subscribed(2)
    assert [r.event for r in again] == ["subscribed", "subscribed"]
    assert all(r.json["recovered"] is True for r in again)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!",
        "x" * 3000,
        encode_cursor({"briefs": "abc-1-0"}),  # well-formed, never issued
        encode_cursor({"briefs": "not an id"}),
    ],
    ids=["garbage", "not-base64", "too-long", "never-issued", "not-an-event-id"],
)
async def test_a_last_event_id_never_issued_is_not_recovered(
    api: httpx.AsyncClient, cursor: str
) -> None:
    async with open_stream(api, ["briefs"], last_event_id=cursor) as stream:
        first = await stream.next()
    assert first.event == "subscribed"
    assert first.json == {"type": "subscribed", "topic": "briefs", "recovered": False}


async def test_the_cursor_sent_after_recovered_false_resumes(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    # A reader comes back with a stale cursor: it is told to refetch (recovered: false), and
    # the record saying so carries a new cursor. That cursor was issued by this server, so
    # coming back with it must resume, not send the reader to refetch again.
    async with open_stream(api, ["briefs"], last_event_id="stale") as stream:
        first = await stream.next()
    assert first.json["recovered"] is False
    assert first.id
    brief = await publish(api, live_server.token, "published while away")
    async with open_stream(api, ["briefs"], last_event_id=first.id) as stream:
        records = await stream.until_subscribed()
    assert [(r.event, r.json.get("recovered")) for r in records] == [
        ("brief.published", None),
        ("subscribed", True),
    ]
    assert records[0].json["data"] == brief


async def test_a_garbage_since_is_not_recovered(api: httpx.AsyncClient) -> None:
    async with open_stream(api, ["briefs"], since="garbage") as stream:
        first = await stream.next()
    assert first.json == {"type": "subscribed", "topic": "briefs", "recovered": False}


async def test_another_topics_cursor_is_not_recovered(
    live_server: LiveServer, api: httpx.AsyncClient, article: str
) -> None:
    async with open_stream(api, [f"comments:{article}"]) as stream:
        comments_cursor = (await stream.until_subscribed())[-1].id
    assert comments_cursor
    position = decode_cursor(comments_cursor)
    assert position is not None
    borrowed = encode_cursor({"briefs": position[f"comments:{article}"]})
    async with open_stream(api, ["briefs"], last_event_id=borrowed) as stream:
        first = await stream.next()
    assert first.json == {"type": "subscribed", "topic": "briefs", "recovered": False}


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?topic=weather",
        "?topic=briefs&topic=weather",
        "?topic=comments:Bad%20Slug",
        "?topic=comments:",
        "?since=abc",
    ],
)
async def test_bad_topics_are_400_before_the_stream(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get("/events" + query)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "unknown_topic"
    assert error["message"]


async def test_too_many_topics_are_400(api: httpx.AsyncClient) -> None:
    params = [("topic", f"comments:a{i}") for i in range(17)]
    response = await api.get("/events", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_subscriptions"


async def test_a_foreign_origin_is_refused(live_server: LiveServer, api: httpx.AsyncClient) -> None:
    response = await api.get(
        "/events", params={"topic": "briefs"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden_origin"


async def test_a_reader_who_leaves_is_forgotten(live_server: LiveServer) -> None:
    readers = live_server.services.readers
    async with live_server.client() as client:
        async with open_stream(client, ["briefs"]) as stream:
            await stream.until_subscribed()
            assert readers.counts()["sse"] == 1
        await wait_for(lambda: readers.counts()["sse"] == 0, what="the SSE reader to be dropped")


# -- shutdown --------------------------------------------------------------------------------


async def test_the_stream_ends_cleanly_when_the_server_stops(live_server: LiveServer) -> None:
    async with live_server.client() as client, open_stream(client, ["briefs"]) as stream:
        await stream.until_subscribed()
        started = time.monotonic()
        await asyncio.wait_for(live_server.stop(), TIMEOUT * 2)
        assert time.monotonic() - started < TIMEOUT * 2
        assert await stream.ended(), "the server stopped but the stream stayed open"
        assert stream.error is None, f"the stream was cut, not ended: {stream.error!r}"
