"""HTTP helpers shared by the JSON API and the pages: client address, bounded bodies."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import HTTPConnection, Request

from livefeed import limits
from livefeed.errors import BadJSON, InvalidInput, PayloadTooLarge


def client_address(connection: HTTPConnection) -> str:
    """The address a request came from, used for per-client limits."""
    return connection.client.host if connection.client else "unknown"


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
    """The request body, or PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes")
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
