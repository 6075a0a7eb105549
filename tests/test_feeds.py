"""Atom and JSON feeds of the latest briefs: valid, cacheable by ETag, following the desk."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import feedparser
import httpx

from tests.conftest import LiveServer
from tests.helpers import auth


async def _publish(live_server: LiveServer, api: httpx.AsyncClient, **brief: Any) -> Any:
    response = await api.post("/api/briefs", json=brief, headers=auth(live_server.token))
    assert response.status_code == 201, response.text
    return response.json()


def _is_rfc3339(text: object) -> bool:
    return isinstance(text, str) and datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo


async def test_the_atom_feed_is_valid_atom_with_the_latest_briefs(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await _publish(live_server, api, text="Markets open <higher> & calm", article="markets")
    second = await _publish(live_server, api, text="Storm reaches the coast", breaking=True)
    response = await api.get("/feeds/briefs.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "atom10"
    assert parsed.feed.title
    titles = [e.title for e in parsed.entries]
    assert titles == ["Breaking: Storm reaches the coast", "Markets open <higher> & calm"]
    newest = parsed.entries[0]
    assert newest.id.endswith(second["id"])
    assert newest.updated_parsed and newest.published_parsed
    assert parsed.entries[1].link == f"{live_server.url}/articles/markets"
    assert [t.term for t in newest.tags] == ["breaking"]


async def test_the_json_feed_has_the_required_fields_and_types(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    brief = await _publish(live_server, api, text="Vote count begins", breaking=True)
    response = await api.get("/feeds/briefs.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/feed+json")
    feed = response.json()
    # JSON Feed 1.1: version and title are required strings, items a required array.
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(feed["title"], str) and feed["title"]
    assert feed["feed_url"] == f"{live_server.url}/feeds/briefs.json"
    assert isinstance(feed["home_page_url"], str)
    (item,) = feed["items"]
    # Each item: a string id, and content_html or content_text.
    assert isinstance(item["id"], str) and item["id"].endswith(brief["id"])
    assert item["content_text"] == "Vote count begins"
    assert _is_rfc3339(item["date_published"]) and _is_rfc3339(item["date_modified"])
    assert item["url"] == f"{live_server.url}/"
    assert item["tags"] == ["breaking"]


async def test_at_most_50_briefs_newest_first(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    for n in range(53):
        await _publish(live_server, api, text=f"brief {n}")
    items = (await api.get("/feeds/briefs.json")).json()["items"]
    assert [i["content_text"] for i in items] == [f"brief {n}" for n in range(52, 2, -1)]
    entries = feedparser.parse((await api.get("/feeds/briefs.atom")).content).entries
    assert len(entries) == 50 and entries[0].title == "brief 52"


async def test_etag_round_trip_gives_304_until_the_briefs_change(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    await _publish(live_server, api, text="first")
    for path in ("/feeds/briefs.atom", "/feeds/briefs.json"):
        first = await api.get(path)
        etag = first.headers["etag"]
        assert "max-age" in first.headers["cache-control"]
        again = await api.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
    atom_etag = (await api.get("/feeds/briefs.atom")).headers["etag"]
    json_etag = (await api.get("/feeds/briefs.json")).headers["etag"]
    assert atom_etag != json_etag  # one representation's tag never validates the other
    await _publish(live_server, api, text="second")
    changed = await api.get("/feeds/briefs.atom", headers={"If-None-Match": atom_etag})
    assert changed.status_code == 200 and changed.headers["etag"] != atom_etag
    metrics = (await api.get("/metrics")).text
    assert 'livefeed_feed_requests_total{feed="atom",status="304"} 1.0' in metrics


async def test_a_retracted_brief_leaves_and_a_correction_updates(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    kept = await _publish(live_server, api, text="Bridge closed")
    gone = await _publish(live_server, api, text="Wrong report")
    token = auth(live_server.token)
    etag = (await api.get("/feeds/briefs.json")).headers["etag"]
    assert (await api.delete(f"/api/briefs/{gone['id']}", headers=token)).status_code == 204
    response = await api.patch(
        f"/api/briefs/{kept['id']}", json={"text": "Bridge closed until noon"}, headers=token
    )
    corrected = response.json()
    assert corrected["updated_at"] != kept["updated_at"]
    feed = await api.get("/feeds/briefs.json", headers={"If-None-Match": etag})
    assert feed.status_code == 200
    (item,) = feed.json()["items"]
    assert item["content_text"] == "Bridge closed until noon"
    assert item["date_modified"] == corrected["updated_at"]
    assert item["date_published"] == kept["published_at"]
    (entry,) = feedparser.parse((await api.get("/feeds/briefs.atom")).content).entries
    assert entry.title == "Bridge closed until noon"
    assert entry.updated != entry.published


async def test_pages_link_their_feeds(api: httpx.AsyncClient) -> None:
    page = (await api.get("/")).text
    assert '<link rel="alternate" type="application/atom+xml"' in page
    assert 'href="/feeds/briefs.json"' in page
