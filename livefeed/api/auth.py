"""Bearer-token auth for editor writes: the operator token or an editor's own API token."""

from __future__ import annotations

from starlette.requests import Request

from livefeed.errors import Unauthorized
from livefeed.services import services_of
from livefeed.storage.editors import OPERATOR, is_operator_token

_TOKEN_MAX = 256  # longer than any token we issue


async def require_editor(request: Request) -> str:
    """The editor the request's bearer token belongs to (``operator`` for the operator
    token); Unauthorized for a missing, unknown or revoked token."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("editor writes need Authorization: Bearer <token>")
    if len(given) > _TOKEN_MAX:
        raise Unauthorized("invalid token")
    services = services_of(request)
    if is_operator_token(services.settings.editor_token, given):
        return OPERATOR
    editor = await services.editors.editor_of_token(given)
    if editor is None:
        raise Unauthorized("invalid or revoked token")
    return editor
