"""HTTP helpers shared by the JSON API and the pages: client address, bounded bodies."""

from __future__ import annotations

import asyncio
import json
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from starlette.requests import HTTPConnection, Request

from livefeed import limits, models
from livefeed.errors import BadJSON, InvalidInput, NotFound, PayloadTooLarge, RequestTimeout

Networks = tuple[IPv4Network | IPv6Network, ...]


def article_slug(request: Request) -> str:
    """The ``{slug}`` of the path; NotFound unless it could name an article."""
    slug = str(request.path_params["slug"])
    if not models.is_slug(slug):
        raise NotFound(f"no article {slug[:80]!r}")
    return slug


def brief_id(request: Request) -> str:
    """The ``{brief_id}`` of the path; NotFound unless it could name a brief."""
    return _path_id(request, "brief_id", "brief")


def comment_id(request: Request) -> str:
    """The ``{comment_id}`` of the path; NotFound unless it could name a comment."""
    return _path_id(request, "comment_id", "comment")


def _path_id(request: Request, name: str, what: str) -> str:
    value = str(request.path_params[name])
    if not models.is_id(value):
        raise NotFound(f"no {what} {value[:64]!r}")
    return value


def client_address(connection: HTTPConnection, trusted: Networks) -> str:
    """The address a request came from, used for per-client limits (SPEC "Client addresses").

    The TCP peer, unless the peer is one of ``trusted`` (``LIVEFEED_TRUSTED_PROXIES``): then
    the client is the right-most ``X-Forwarded-For`` (else ``Forwarded: for=``) address that
    is not itself a trusted proxy (anything left of it could be forged by the client). IPv6
    clients are counted per /64, which is what one household or one host usually gets.
    """
    peer = connection.client.host if connection.client else "unknown"
    if not _is_in(peer, trusted):
        return _per_client(peer)
    for hop in reversed(_forwarded_for(connection)):
        if not _is_in(hop, trusted):
            return _per_client(hop)
    return _per_client(peer)


def is_https(connection: HTTPConnection, trusted: Networks) -> bool:
    """True when the browser talks HTTPS to us (directly, or to a trusted proxy)."""
    if connection.scope.get("scheme") in {"https", "wss"}:  # not .url: built per request
        return True
    peer = connection.client.host if connection.client else ""
    if not _is_in(peer, trusted):
        return False
    header = connection.headers.get("x-forwarded-proto")
    # The first value is what the outermost proxy saw: the browser's own scheme.
    protos = header.split(",") if header is not None else _forwarded_params(connection, "proto")
    return bool(protos) and protos[0].strip().lower() == "https"


def _forwarded_for(connection: HTTPConnection) -> list[str]:
    """The hops a trusted proxy reported, nearest last: X-Forwarded-For, else Forwarded."""
    header = connection.headers.get("x-forwarded-for")
    if header is not None:
        return [hop.strip() for hop in header.split(",") if hop.strip()]
    hops = []
    for node in _forwarded_params(connection, "for"):
        # RFC 7239 nodes: 192.0.2.1, "192.0.2.1:4711", "[2001:db8::1]:4711", unknown, _hidden
        if node.startswith("["):
            node = node[1 : node.find("]")] if "]" in node else ""
        elif node.count(":") == 1:
            node = node.split(":")[0]
        hops.append(node)
    return hops


def _forwarded_params(connection: HTTPConnection, name: str) -> list[str]:
    """Every value of ``name`` in the ``Forwarded`` header(s), in order."""
    values = []
    for header in connection.headers.getlist("forwarded"):
        for element in header.split(","):
            for pair in element.split(";"):
                key, _, value = pair.strip().partition("=")
                if key.lower() == name:
                    values.append(value.strip().strip('"'))
    return values


def _per_client(address: str) -> str:
    """One key per client: IPv4 as is, IPv6 as its /64 (IPv4-mapped IPv6 as the IPv4)."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _is_in(address: str, networks: Networks) -> bool:
    if not networks:
        return False
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
