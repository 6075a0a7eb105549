"""The moderation queue on the desk: comments awaiting moderation, then reported ones by
report count, with approve / hide / feature / clear reports, each credited to its editor.

The queue lives in Redis and every change to it is announced on the desk's channel, so
every open desk of every process refetches it (``/editor/data/queue``) at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from livefeed import models
from livefeed.editor.briefs import desk
from livefeed.editor.session import require_signed_in, require_writer
from livefeed.editor.views import page, read_form, render, see_other, wants_json
from livefeed.errors import NotFound
from livefeed.storage.content import EDITOR
from livefeed.storage.moderation import PENDING, REPORTED, Moderation, QueueItem

DONE = {
    "approve": "Comment approved: it is live on the article now.",
    "feature": "Comment featured: it is pinned above the others.",
    "unfeature": "Comment no longer featured.",
    "clear-reports": "Reports dismissed.",
    "hide": "Comment hidden.",
}
ACTIONS = tuple(DONE)


def _moderation(request: Request) -> Moderation:
    found: Moderation = request.app.state.moderation
    return found


async def _queue(request: Request) -> dict[str, Any]:
    moderation = _moderation(request)
    pending, reported, rows, sizes = await asyncio.gather(
        moderation.queue(PENDING),
        moderation.queue(REPORTED),
        desk(request).articles(),
        moderation.sizes(),
    )
    return {
        "queue_items": pending + reported,
        "queue_count": sum(sizes.values()),
        "titles": {row.article.slug: row.article.title for row in rows},
    }


def item_json(item: QueueItem) -> dict[str, Any]:
    return item.to_json()


@page
async def queue_page(request: Request) -> Response:
    await require_signed_in(request)
    found = await _queue(request)
    return render(
        request,
        "queue.html",
        heading="Moderation queue",
        section="queue",
        notice=DONE.get(request.query_params.get("done", "")),
        desk={"page": "queue", "articles": found["titles"]},
        **found,
    )


@page
async def queue_data(request: Request) -> Response:
    """The queue as JSON: what the desk script shows, and the badge's count."""
    await require_signed_in(request)
    found = await _queue(request)
    items = [item_json(i) for i in found["queue_items"]]
    return JSONResponse(
        {"items": items, "articles": found["titles"], "count": found["queue_count"]}
    )


@page
async def moderate(request: Request) -> Response:
    form = await read_form(request)
    who = await require_writer(request, form)
    slug = str(request.path_params["slug"])
    comment_id = str(request.path_params["comment_id"])
    action = str(request.path_params["action"])
    if not (models.is_slug(slug) and models.is_id(comment_id)) or action not in ACTIONS:
        raise NotFound("no such comment or action")
    d = desk(request)
    if action == "approve":
        await d.approve_comment(slug, comment_id, who.editor, EDITOR)
    elif action in ("feature", "unfeature"):
        await d.feature_comment(slug, comment_id, action == "feature", who.editor, EDITOR)
    elif action == "clear-reports":
        await d.clear_reports(_moderation(request), slug, comment_id, who.editor)
    else:
        await d.hide_comment(slug, comment_id, who.editor, EDITOR)
    if wants_json(request):
        return JSONResponse({"done": action, "ref": f"{slug}/{comment_id}", "by": who.editor})
    return see_other(f"/editor/moderation?done={action}")


routes = [
    Route("/editor/moderation", queue_page, methods=["GET"]),
    Route("/editor/data/queue", queue_data, methods=["GET"]),
    Route("/editor/moderation/{slug}/{comment_id}/{action}", moderate, methods=["POST"]),
]
