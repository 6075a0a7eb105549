"""The article page under a spike: rendered once per version of what it shows, revalidated
by ETag, held by shared caches only while it is the same for every reader."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from livefeed import limits
from livefeed.pages.render_cache import RenderCache
from livefeed.pages.shared_reads import SharedReads
from tests.conftest import LiveServer
from tests.editor_support import signed_in
from tests.helpers import auth

SLUG = "spike"
ARTICLE = {"title": "Spike", "summary": "s", "body": ["p"], "comment_mode": "open"}
_LIVE = re.compile(r'<script type="application/json" id="live-config">(.*?)</script>')


async def _article(server: LiveServer, api: httpx.AsyncClient, **fields: Any) -> None:
    body = {**ARTICLE, **fields}
    response = await api.put(f"/api/articles/{SLUG}", json=body, headers=auth(server.token))
    assert response.status_code in (200, 201), response.text


def _positions(page: str) -> dict[str, str]:
    found = _LIVE.search(page)
    assert found, "the page embeds no live positions"
    return dict(json.loads(found[1])["positions"])


async def _revalidate(api: httpx.AsyncClient, etag: str) -> httpx.Response:
    """The page as a cache holding ``etag`` asks for it: 200 (changed) expected."""
    response = await api.get(f"/articles/{SLUG}", headers={"If-None-Match": etag})
    assert response.status_code == 200, "the page changed but kept its ETag"
    assert response.headers["etag"] != etag
    return response


async def test_a_matching_etag_is_answered_304_and_head_works(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await _article(live_server, api)
    page = await api.get(f"/articles/{SLUG}")
    etag, cache_control = page.headers["etag"], page.headers["cache-control"]
    assert etag.startswith('W/"')
    assert cache_control == (
        f"public, max-age=0, s-maxage={limits.PAGE_SHARED_MAX_AGE}, "
        f"stale-while-revalidate={limits.PAGE_STALE_WHILE_REVALIDATE}"
    )
    for tag in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):
        again = await api.get(f"/articles/{SLUG}", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["cache-control"] == cache_control
        assert "content-security-policy" in again.headers
    assert (await api.get(f"/articles/{SLUG}", headers={"If-None-Match": '"x"'})).text == page.text
    head = await api.head(f"/articles/{SLUG}")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    assert int(head.headers["content-length"]) == len(page.content)
    head = await api.head(f"/articles/{SLUG}", headers={"If-None-Match": etag})
    assert head.status_code == 304
    # Another page of comments is another representation, with a tag of its own.
    other = await api.get(f"/articles/{SLUG}", params={"reply_to": "x1"})
    assert other.status_code == 200 and other.headers["etag"] != etag


async def test_every_change_the_page_shows_moves_its_etag_and_content(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    token = auth(live_server.token)
    await _article(live_server, api)
    etag = (await api.get(f"/articles/{SLUG}")).headers["etag"]

    brief = (await api.post("/api/briefs", json={"text": "Dam holds"}, headers=token)).json()
    page = await _revalidate(api, etag)
    assert "Dam holds" in page.text
    # The embedded positions are where the live client resumes: the page's own, current ones.
    briefs_position = (await api.get("/api/briefs")).json()["last_event_id"]
    assert _positions(page.text)["briefs"] == briefs_position

    body = {"author": "Ann", "text": "Stay safe"}
    comment = (await api.post(f"/api/articles/{SLUG}/comments", json=body)).json()
    page = await _revalidate(api, page.headers["etag"])
    assert "Stay safe" in page.text and "1 comment" in page.text

    hidden = await api.delete(f"/api/articles/{SLUG}/comments/{comment['id']}", headers=token)
    assert hidden.status_code == 204
    page = await _revalidate(api, page.headers["etag"])
    assert "Stay safe" not in page.text

    assert (await api.delete(f"/api/briefs/{brief['id']}", headers=token)).status_code == 204
    page = await _revalidate(api, page.headers["etag"])
    assert "Dam holds" not in page.text

    # Closing comments announces no event: the comment mode is part of the version.
    await live_server.services.content.close_comments(SLUG, True)
    page = await _revalidate(api, page.headers["etag"])
    assert "Comments are closed." in page.text

    await _article(live_server, api, title="Spike, corrected")
    page = await _revalidate(api, page.headers["etag"])
    assert "Spike, corrected" in page.text


async def test_while_nothing_moves_the_kept_page_is_served_without_reading_content(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await _article(live_server, api)
    first = await api.get(f"/articles/{SLUG}")
    # A write behind the event log's back moves no position: the kept page stands ...
    services = live_server.services
    record = json.loads(await services.redis.get(services.keys.article(SLUG)))
    record["title"] = "Edited behind the back of the log"
    await services.redis.set(services.keys.article(SLUG), json.dumps(record))
    assert (await api.get(f"/articles/{SLUG}")).text == first.text
    # (A page replying to a comment is rendered each time: any id makes one, none is kept.)
    replying = await api.get(f"/articles/{SLUG}", params={"reply_to": "no-such-comment"})
    assert "Edited behind the back of the log" in replying.text
    # ... until anything the page shows moves.
    await api.post("/api/briefs", json={"text": "Later"}, headers=auth(live_server.token))
    assert "Edited behind the back of the log" in (await api.get(f"/articles/{SLUG}")).text


async def test_the_held_notice_is_one_readers_own_and_never_kept(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await _article(live_server, api, comment_mode="premoderated")
    anonymous = await api.get(f"/articles/{SLUG}")
    posted = await api.post(f"/articles/{SLUG}/comments", data={"author": "C", "text": "Held"})
    assert posted.status_code == 303
    own = await api.get(posted.headers["location"])
    assert "awaiting moderation" in own.text and ">Held<" not in own.text
    assert own.headers["cache-control"] == "private, no-store" and "etag" not in own.headers
    # Neither before nor after the author's view does anyone else see the notice.
    for _ in range(2):
        page = await api.get(f"/articles/{SLUG}")
        assert "awaiting moderation" not in page.text
        assert page.headers["etag"] == anonymous.headers["etag"]
        assert page.headers["cache-control"].startswith("public")


async def test_a_published_form_post_lands_on_a_url_no_cache_holds(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await _article(live_server, api)
    before = await api.get(f"/articles/{SLUG}")
    posted = await api.post(f"/articles/{SLUG}/comments", data={"author": "D", "text": "Mine"})
    location = posted.headers["location"]
    comment_id = location.rsplit("#comment-", 1)[1]
    assert location == f"/articles/{SLUG}?posted={comment_id}#comment-{comment_id}"
    page = await api.get(location)
    assert ">Mine<" in page.text and page.headers["etag"] != before.headers["etag"]


async def test_an_editors_session_changes_nothing_on_the_reader_page(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await _article(live_server, api)
    anonymous = await api.get(f"/articles/{SLUG}")
    async with await signed_in(live_server) as editor:
        cookies = "; ".join(f"{c.name}={c.value}" for c in editor.client.cookies.jar)
        assert cookies
        # Browsers keep the desk's cookies to /editor; even sent here, they change nothing.
        page = await api.get(f"/articles/{SLUG}", headers={"Cookie": cookies})
    assert page.text == anonymous.text and page.headers["etag"] == anonymous.headers["etag"]
    assert "set-cookie" not in page.headers


async def test_an_unknown_article_is_404_until_it_is_published(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    missing = await api.get(f"/articles/{SLUG}")
    assert missing.status_code == 404
    assert "etag" not in missing.headers and missing.headers["cache-control"] == "no-cache"
    assert (await api.get(f"/articles/{SLUG}", headers={"If-None-Match": "*"})).status_code == 404
    await _article(live_server, api)
    assert (await api.get(f"/articles/{SLUG}")).status_code == 200


# -- the cache itself ------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_cache_is_bounded_in_entries_bytes_and_age() -> None:
    clock = _Clock()
    cache = RenderCache(entries=3, size=100, max_age=10.0, clock=clock)
    renders: list[str] = []

    async def render(key: str, size: int = 10) -> bytes:
        async def rendered() -> bytes:
            renders.append(key)
            return key.encode().ljust(size, b".")

        return await cache.page(key, "v1", rendered)

    for key in ("a", "b", "c", "a", "d"):  # "a" used again, so "b" goes first
        await render(key)
    assert renders == ["a", "b", "c", "d"] and len(cache) == 3
    await render("b")
    assert renders[-1] == "b"
    await render("big", size=95)  # over the bytes bound together: the oldest go
    assert len(cache) == 1 and cache.size == 95
    await render("huge", size=101)  # bigger than the bound alone: served, never kept
    assert len(cache) == 1 and cache.size == 95
    clock.now = 10.0
    await render("big", size=95)
    assert renders[-1] == "big", "a page older than max_age was served"
    assert await cache.page("big", "v2", lambda: _bytes(b"new")) == b"new"


async def _bytes(body: bytes) -> bytes:
    return body


async def test_concurrent_readers_of_a_new_version_wait_for_one_render() -> None:
    cache = RenderCache()
    started = asyncio.Event()
    release = asyncio.Event()
    renders = 0

    async def rendered() -> bytes:
        nonlocal renders
        renders += 1
        started.set()
        await release.wait()
        return b"page"

    first = asyncio.create_task(cache.page("k", "v", rendered))
    await started.wait()
    others = [asyncio.create_task(cache.page("k", "v", rendered)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(first, *others) == [b"page"] * 11
    assert renders == 1


async def test_a_failed_render_leaves_each_waiter_to_meet_the_error_itself() -> None:
    cache = RenderCache()
    started = asyncio.Event()
    release = asyncio.Event()

    async def failing() -> bytes:
        started.set()
        await release.wait()
        raise LookupError("gone")

    first = asyncio.create_task(cache.page("k", "v", failing))
    await started.wait()
    waiter = asyncio.create_task(cache.page("k", "v", failing))
    await asyncio.sleep(0)
    release.set()
    for task in (first, waiter):
        with pytest.raises(LookupError):
            await task
    assert len(cache) == 0


async def test_reads_that_arrive_together_share_one_call_and_later_ones_do_not() -> None:
    reads: SharedReads[int] = SharedReads()
    calls = 0
    release = asyncio.Event()

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    together = [asyncio.create_task(reads.read("k", fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the call is sent now: a read from here on must not join it
    later = asyncio.create_task(reads.read("k", fetch))
    other = asyncio.create_task(reads.read("other key", fetch))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*together) == [1] * 10
    assert {await later, await other} == {2, 3} and calls == 3


async def test_a_shared_read_that_fails_fails_for_each_of_its_callers() -> None:
    reads: SharedReads[int] = SharedReads()

    async def fetch() -> int:
        raise ConnectionError("redis is down")

    results = await asyncio.gather(
        *(reads.read("k", fetch) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
