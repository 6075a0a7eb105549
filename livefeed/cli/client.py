"""A small client of livefeed's JSON API, for the CLI and newsroom scripts (stdlib only).

    client = ApiClient("https://news.example", token)
    brief = client.publish("Talks ended", breaking=True)
    client.correct(brief["id"], text="Talks ended without a deal")
    client.retract(brief["id"])

Failures raise ``ApiError``, whose ``kind`` says what went wrong in words a script can
branch on: ``unreachable``, ``unauthorized``, ``not_found``, ``invalid``, ``server``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from livefeed import __version__

UNREACHABLE = "unreachable"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
INVALID = "invalid"
SERVER = "server"

TIMEOUT = 10.0


class ApiError(Exception):
    """A call that did not succeed; ``message`` is one line for a person."""

    def __init__(self, kind: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


def _kind(status: int) -> str:
    if status in (401, 403):
        return UNAUTHORIZED
    if status == 404:
        return NOT_FOUND
    if status in (400, 409, 413, 422):
        return INVALID
    return SERVER


class ApiClient:
    """Editor calls on one livefeed server with one token."""

    def __init__(self, url: str, token: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ApiError(INVALID, f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        # Unredirected: urllib copies ordinary headers onto a redirect, which would hand the
        # token to whatever host the redirect names.
        request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", f"livefeed-cli/{__version__}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(_kind(exc.code), _message(exc), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(UNREACHABLE, f"cannot reach livefeed at {self.url}: {reason}") from None
        return json.loads(raw) if raw else None

    def publish(
        self, text: str, *, breaking: bool = False, article: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "breaking": breaking}
        if article is not None:
            body["article"] = article
        brief: dict[str, Any] = self._call("POST", "/api/briefs", body)
        return brief

    def correct(self, brief_id: str, **changes: Any) -> dict[str, Any]:
        brief: dict[str, Any] = self._call(
            "PATCH", f"/api/briefs/{quote(brief_id, safe='')}", changes
        )
        return brief

    def retract(self, brief_id: str) -> None:
        self._call("DELETE", f"/api/briefs/{quote(brief_id, safe='')}")


def _message(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        message = error.reason if isinstance(error.reason, str) else "request failed"
    return f"{message} (HTTP {error.code})"
