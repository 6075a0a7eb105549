"""ASGI middleware at the door: per-address caps on live connections, cross-site writes
refused, and security headers.

Each process counts the live connections (WebSocket ``/ws`` and SSE ``/events``) of each
client address; the connection past ``max_connections_per_ip`` is refused before any
work is done for it: HTTP 429 (a WebSocket handshake gets the 429 as its HTTP answer,
or close code 1008 where the server cannot send one). Every HTTP response also gets the
headers a browser should always see; HSTS only when the site is reached over HTTPS. A
write a browser marks ``Sec-Fetch-Site: cross-site`` (another site's page posting here) is
refused with 403 whatever it carries.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livefeed import errors
from livefeed.errors import CloseCode
from livefeed.web.requests import Networks, client_address, is_https

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    (b"x-frame-options", b"DENY"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_TOO_MANY = json.dumps(
    errors.LivefeedError(
        "too many live connections from this address", code=errors.RATE_LIMITED
    ).to_json()
).encode()


_CROSS_SITE = json.dumps(
    errors.LivefeedError("cross-site writes are refused", code=errors.FORBIDDEN_ORIGIN).to_json()
).encode()
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _is_cross_site_write(method: str, connection: HTTPConnection) -> bool:
    """A browser telling us another site's page is making it write here (CSRF)."""
    return method not in _SAFE_METHODS and connection.headers.get("sec-fetch-site") == "cross-site"


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = headers or [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LiveConnections:
    """The live connections of each client address in this process, up to a cap each."""

    __slots__ = ("_live", "_max", "trusted")

    def __init__(self, max_per_address: int, trusted_proxies: Networks) -> None:
        self._max = max_per_address
        self.trusted = trusted_proxies
        self._live: Counter[str] = Counter()

    def admit(self, scope: Scope) -> str | None:
        """Count one more live connection for the scope's client: its address, or None
        when the address is at its cap (the connection is then refused)."""
        address = client_address(HTTPConnection(scope), self.trusted)
        if self._live[address] >= self._max:
            return None
        self._live[address] += 1
        return address

    def release(self, address: str) -> None:
        self._live[address] -= 1
        if not self._live[address]:
            del self._live[address]


async def refuse_live(scope: Scope, send: Send) -> None:
    """Turn away a live connection over its address's cap: 429 (as the WebSocket
    handshake's HTTP answer where the server can send one, else close code 1008)."""
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"10")]
    if scope["type"] == "http":
        await _send_json(send, 429, _TOO_MANY, headers)
    elif "websocket.http.response" in scope.get("extensions", {}):
        start: dict[str, Any] = {"status": 429, "headers": [*headers, *SECURITY_HEADERS]}
        await send({"type": "websocket.http.response.start", **start})
        await send({"type": "websocket.http.response.body", "body": _TOO_MANY})
    else:
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})


class Guard:
    """Refuses live connections over the per-address cap; adds security headers.

    The reader WebSocket (``/ws``) does not come through here: the app hands it to its
    transport before any middleware (``livefeed.app``), which asks ``LiveConnections``
    itself.
    """

    def __init__(self, app: ASGIApp, live: LiveConnections) -> None:
        self._app = app
        self._live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        if scope["type"] == "http" and _is_cross_site_write(scope["method"], connection):
            await _send_json(send, 403, _CROSS_SITE)
            return
        is_live = scope["type"] == "websocket" or scope["path"] == "/events"
        if not is_live:
            await self._app(scope, receive, self._with_headers(send, connection))
            return
        address = self._live.admit(scope)
        if address is None:
            await refuse_live(scope, send)
            return
        try:
            await self._app(scope, receive, self._with_headers(send, connection))
        finally:
            self._live.release(address)

    def _with_headers(self, send: Send, connection: HTTPConnection) -> Send:
        secure = is_https(connection, self._live.trusted)
        extra = [*SECURITY_HEADERS, HSTS] if secure else SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(n, v) for n, v in extra if n not in present]
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        return send_with_headers
