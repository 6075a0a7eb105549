"""``/feeds/briefs.atom`` and ``/feeds/briefs.json``: the latest visible briefs for feed readers.

Both feeds are rendered from the same listing (newest first) and carry an ``ETag`` made of
the briefs topic's position: every publish, correction and retraction moves it, so a
reader polling with ``If-None-Match`` gets ``304`` until something changed, and the check
costs one Redis read. A retracted brief leaves the listing, so it leaves the feeds; a
correction moves the brief's ``updated_at``, which both feeds show.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livefeed import events, models
from livefeed.services import services_of
from livefeed.web.templating import environment

FEED_BRIEFS = 50
# Feed readers poll; a few seconds of caching absorbs a crowd without hiding news for long.
CACHE_CONTROL = "public, max-age=5"
ATOM = "application/atom+xml; charset=utf-8"
JSON_FEED = "application/feed+json; charset=utf-8"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
TITLE = "livefeed: latest news"

_ENV = environment()


def _etag(kind: str, position: str) -> str:
    digest = hashlib.sha256(f"{kind} {position}".encode()).hexdigest()[:24]
    return f'"{digest}"'


def _matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _entry(brief: models.Brief, base: str) -> dict[str, Any]:
    url = f"{base}/articles/{brief.article}" if brief.article else f"{base}/"
    title = ("Breaking: " if brief.breaking else "") + brief.text
    return {"brief": brief, "url": url, "title": title, "id": f"{base}/#brief-{brief.id}"}


def _count(request: Request, kind: str, status: int) -> None:
    services_of(request).stats.feeds[kind, status] += 1


async def _feed(request: Request, kind: str) -> Response:
    content = services_of(request).content
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    # The position alone decides a 304: no listing is read for a reader already up to date.
    etag = _etag(kind, await content.position(events.BRIEFS))
    if _matches(request, etag):
        _count(request, kind, 304)
        return Response(status_code=304, headers={**headers, "ETag": etag})
    listing = await content.list_briefs(limit=FEED_BRIEFS)
    etag = _etag(kind, listing.last_event_id)
    base = _base(request)
    entries = [_entry(b, base) for b in listing.items]
    updated = max((b.updated_at for b in listing.items), default=models.now_iso())
    _count(request, kind, 200)
    if kind == "atom":
        body = _ENV.get_template("feeds/briefs.atom.xml").render(
            title=TITLE, base=base, entries=entries, updated=updated
        )
        return Response(body, media_type=ATOM, headers={**headers, "ETag": etag})
    feed = {
        "version": JSON_FEED_VERSION,
        "title": TITLE,
        "home_page_url": f"{base}/",
        "feed_url": f"{base}/feeds/briefs.json",
        "language": "en",
        "items": [_json_item(e) for e in entries],
    }
    text = json.dumps(feed, ensure_ascii=False, separators=(",", ":"))
    return Response(text, media_type=JSON_FEED, headers={**headers, "ETag": etag})


def _json_item(entry: dict[str, Any]) -> dict[str, Any]:
    brief: models.Brief = entry["brief"]
    item: dict[str, Any] = {
        "id": entry["id"],
        "url": entry["url"],
        "title": entry["title"],
        "content_text": brief.text,
        "date_published": brief.published_at,
        "date_modified": brief.updated_at,
    }
    if brief.breaking:
        item["tags"] = ["breaking"]
    return item


async def atom_feed(request: Request) -> Response:
    """The latest briefs as Atom 1.0."""
    return await _feed(request, "atom")


async def json_feed(request: Request) -> Response:
    """The latest briefs as JSON Feed 1.1."""
    return await _feed(request, "json")


def routes() -> list[BaseRoute]:
    return [
        Route("/feeds/briefs.atom", atom_feed, methods=["GET"], name="atom_feed"),
        Route("/feeds/briefs.json", json_feed, methods=["GET"], name="json_feed"),
    ]
