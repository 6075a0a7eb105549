"""CORS for the origins in ``LIVEFEED_ALLOWED_ORIGINS``: reads only, never credentials.

A page on a listed origin (a sister site embedding the live column with ``/static/embed.js``)
may read the lists, the feeds, the static modules and ``/events`` across origins. Only
``GET``/``HEAD`` answers carry ``Access-Control-Allow-Origin``, and never
``Access-Control-Allow-Credentials``: a foreign page can read what anyone may read, but
cannot make a visitor's browser write with its cookies. The WebSocket has no CORS; its
handshake keeps its own origin check.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livefeed.stats import Stats

_READ_METHODS = {"GET", "HEAD"}
# Where a listed origin may read from: the public lists and live streams, nothing else.
_PREFIXES = ("/api/briefs", "/api/articles/", "/events", "/feeds/", "/static/")
# Headers a cross-origin reader may send (EventSource adds Last-Event-ID on reconnect).
_REQUEST_HEADERS = {"accept", "cache-control", "last-event-id"}
PREFLIGHT_MAX_AGE = "600"


def _is_readable(path: str) -> bool:
    return any(path == p or path.startswith(p) for p in _PREFIXES)


class Cors:
    """ASGI middleware adding CORS read headers for listed origins, answering preflights."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str], stats: Stats) -> None:
        self._app = app
        self._allowed = frozenset(allowed)
        self._stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._allowed:
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin", "").rstrip("/")
        path = scope["path"]
        method = scope["method"]
        if not _is_readable(path):
            await self._app(scope, receive, send)
            return
        listed = origin in self._allowed
        wanted = headers.get("access-control-request-method")
        if listed and method == "OPTIONS" and wanted is not None:
            await self._preflight(origin, wanted, headers, scope, receive, send)
            return
        if method not in _READ_METHODS:
            await self._app(scope, receive, send)
            return
        if listed and path == "/events":
            self._stats.embeds["module"] += 1
        # Every read answer varies by Origin, so a shared cache never hands one site's
        # answer (with or without the CORS header) to another.
        added = [(b"vary", b"Origin")]
        if listed:
            added.append((b"access-control-allow-origin", origin.encode("latin-1")))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        await self._app(scope, receive, send_with_cors)

    async def _preflight(
        self, origin: str, wanted: str, headers: Headers, scope: Scope, receive: Receive, send: Send
    ) -> None:
        listed = headers.get("access-control-request-headers", "")
        asked = {h.strip().lower() for h in listed.split(",")} - {""}
        if wanted.upper() not in _READ_METHODS or not asked <= _REQUEST_HEADERS:
            # No CORS headers: the browser refuses the request it asked about.
            response = Response(status_code=403, headers={"Vary": "Origin"})
        else:
            response = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, HEAD",
                    "Access-Control-Allow-Headers": ", ".join(sorted(_REQUEST_HEADERS)),
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                    "Vary": "Origin",
                },
            )
        await response(scope, receive, send)
