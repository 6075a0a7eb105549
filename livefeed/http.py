"""HTTP helpers shared by the JSON API and the pages: client address, bounded bodies."""

from __future__ import annotations

import asyncio
import json
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from starlette.requests import HTTPConnection, Request

from livefeed import limits
from livefeed.errors import BadJSON, InvalidInput, PayloadTooLarge, RequestTimeout


def client_address(connection: HTTPConnection) -> str:
    """The address a request came from, used for per-client limits.

    ``X-Forwarded-For`` is believed only when the peer is one of the configured trusted
    proxies, and then only as far back as the proxies go: the client is the right-most
    address that is not a trusted proxy (anything left of it could be forged).
    """
    peer = connection.client.host if connection.client else "unknown"
    trusted = _trusted(connection)
    if not trusted or not _is_in(peer, trusted):
        return peer
    hops = [h.strip() for h in connection.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _is_in(hop, trusted):
            return hop
    return peer


def is_https(connection: HTTPConnection) -> bool:
    """True when the browser talks HTTPS to us (directly, or to a trusted proxy)."""
    if connection.url.scheme in {"https", "wss"}:
        return True
    trusted = _trusted(connection)
    peer = connection.client.host if connection.client else ""
    forwarded = connection.headers.get("x-forwarded-proto", "")
    return bool(trusted) and _is_in(peer, trusted) and forwarded.split(",")[0].strip() == "https"


def _trusted(connection: HTTPConnection) -> tuple[IPv4Network | IPv6Network, ...]:
    app = connection.scope.get("app")
    settings = getattr(getattr(app, "state", None), "settings", None)
    return getattr(settings, "trusted_proxies", ())


def _is_in(address: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def is_allowed_origin(connection: HTTPConnection, allowed: tuple[str, ...]) -> bool:
    """True for non-browser clients (no Origin), the site's own origin and ``allowed`` ones.

    Refusing foreign origins at the handshake stops cross-site WebSocket hijacking: a page
    elsewhere cannot open a reader connection in a visitor's browser.
    """
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    host = connection.headers.get("host", "")
    own = {f"http://{host}", f"https://{host}"}
    return origin in own or origin in allowed


async def read_body(request: Request, limit: int = limits.HTTP_BODY_MAX) -> bytes:
    """The request body, or PayloadTooLarge as soon as it passes ``limit`` bytes, or
    RequestTimeout (408) when it has not fully arrived within ``HTTP_BODY_TIMEOUT``."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(limits.HTTP_BODY_TIMEOUT):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise PayloadTooLarge(f"request body is over {limit} bytes")
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive in time") from None
    return bytes(body)


async def read_json(request: Request) -> Any:
    """The request's JSON body: 413 if too large, 400 if not JSON or too deeply nested."""
    body = await read_body(request)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadJSON("request body is not valid JSON") from None
    if _depth(value) > limits.JSON_DEPTH_MAX:
        raise BadJSON(f"JSON nested deeper than {limits.JSON_DEPTH_MAX} levels")
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def list_params(request: Request) -> tuple[int, str | None]:
    """``limit`` (default 20, 1..100) and ``before`` from the query string."""
    raw = request.query_params.get("limit", str(limits.LIST_LIMIT_DEFAULT))
    # str.isdigit() accepts "²", which int() refuses: only ASCII digits are a number here.
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= limits.LIST_LIMIT_MAX):
        raise InvalidInput(f"limit must be an integer from 1 to {limits.LIST_LIMIT_MAX}")
    before = request.query_params.get("before") or None
    if before is not None and len(before) > 64:
        raise InvalidInput("before must be an id")
    return int(raw), before
