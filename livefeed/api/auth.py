"""Bearer-token auth for editor writes."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from livefeed.errors import Unauthorized


def require_editor(request: Request) -> None:
    """Raise Unauthorized unless the request carries the operator token."""
    token: str | None = request.app.state.settings.editor_token
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("editor writes need Authorization: Bearer <token>")
    if token is None or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("invalid token")
