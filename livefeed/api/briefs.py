"""``/api/briefs``: list, publish, correct, retract."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from livefeed import models
from livefeed.api.auth import require_editor
from livefeed.errors import NotFound
from livefeed.storage.content import API, Content
from livefeed.storage.desk import Desk
from livefeed.web.requests import list_params, read_json


def _content(request: Request) -> Content:
    content: Content = request.app.state.content
    return content


def _desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def _brief_id(request: Request) -> str:
    brief_id = request.path_params["brief_id"]
    if not models.is_id(brief_id):
        raise NotFound(f"no brief {brief_id[:64]!r}")
    return str(brief_id)


async def list_briefs(request: Request) -> Response:
    limit, before = list_params(request)
    listing = await _content(request).list_briefs(limit, before)
    items = [b.to_json() for b in listing.items]
    return JSONResponse({"items": items, "last_event_id": listing.last_event_id})


async def publish_brief(request: Request) -> Response:
    editor = await require_editor(request)
    brief = models.new_brief(await read_json(request))
    published = await _desk(request).publish_brief(brief, editor, API)
    return JSONResponse(published.to_json(), status_code=201)


async def correct_brief(request: Request) -> Response:
    editor = await require_editor(request)
    brief_id = _brief_id(request)
    brief = await _desk(request).correct_brief(brief_id, await read_json(request), editor, API)
    return JSONResponse(brief.to_json())


async def retract_brief(request: Request) -> Response:
    editor = await require_editor(request)
    await _desk(request).retract_brief(_brief_id(request), editor, API)
    return Response(status_code=204)


routes = [
    Route("/api/briefs", list_briefs, methods=["GET"]),
    Route("/api/briefs", publish_brief, methods=["POST"]),
    Route("/api/briefs/{brief_id}", correct_brief, methods=["PATCH"]),
    Route("/api/briefs/{brief_id}", retract_brief, methods=["DELETE"]),
]
