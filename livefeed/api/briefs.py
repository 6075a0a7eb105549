"""``/api/briefs``: list, publish, correct, retract."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from livefeed import models
from livefeed.api.auth import require_editor
from livefeed.services import services_of
from livefeed.storage.content import API
from livefeed.web.requests import brief_id, list_params, read_json
from livefeed.web.routing import resource


async def list_briefs(request: Request) -> Response:
    limit, before = list_params(request)
    listing = await services_of(request).content.list_briefs(limit, before)
    items = [b.to_json() for b in listing.items]
    return JSONResponse({"items": items, "last_event_id": listing.last_event_id})


async def publish_brief(request: Request) -> Response:
    editor = await require_editor(request)
    brief = models.new_brief(await read_json(request))
    published = await services_of(request).desk.publish_brief(brief, editor, API)
    return JSONResponse(published.to_json(), status_code=201)


async def correct_brief(request: Request) -> Response:
    editor = await require_editor(request)
    target = brief_id(request)
    changes = await read_json(request)
    brief = await services_of(request).desk.correct_brief(target, changes, editor, API)
    return JSONResponse(brief.to_json())


async def retract_brief(request: Request) -> Response:
    editor = await require_editor(request)
    await services_of(request).desk.retract_brief(brief_id(request), editor, API)
    return Response(status_code=204)


routes = [
    resource("/api/briefs", GET=list_briefs, POST=publish_brief),
    resource("/api/briefs/{brief_id}", PATCH=correct_brief, DELETE=retract_brief),
]
