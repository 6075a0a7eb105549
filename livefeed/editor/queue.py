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

from livefeed.editor.session import require_signed_in
from livefeed.editor.views import desk_list, page, see_other, signed_form, wants_json
from livefeed.errors import NotFound
from livefeed.services import services_of
from livefeed.storage.content import EDITOR
from livefeed.storage.moderation import PENDING, REPORTED
from livefeed.web.requests import article_slug, comment_id
from livefeed.web.routing import resource

DONE = {
    "approve": "Comment approved: it is live on the article now.",
    "feature": "Comment featured: it is pinned above the others.",
    "unfeature": "Comment no longer featured.",
    "clear-reports": "Reports dismissed.",
    "hide": "Comment hidden.",
}
ACTIONS = tuple(DONE)


async def _queue(request: Request) -> dict[str, Any]:
    """The queue, for a signed-in editor."""
    await require_signed_in(request)
    services = services_of(request)
    moderation = services.moderation
    pending, reported, rows, sizes = await asyncio.gather(
        moderation.queue(PENDING),
        moderation.queue(REPORTED),
        services.desk.articles(),
        moderation.sizes(),
    )
    return {
        "queue_items": pending + reported,
        "queue_count": sum(sizes.values()),
        "titles": {row.article.slug: row.article.title for row in rows},
    }


def _as_json(found: dict[str, Any]) -> dict[str, Any]:
    """What the desk script shows, and the badge's count."""
    items = [item.to_json() for item in found["queue_items"]]
    return {"items": items, "articles": found["titles"], "count": found["queue_count"]}


@page
async def moderate(request: Request) -> Response:
    _form, who = await signed_form(request)
    slug, chosen = article_slug(request), comment_id(request)
    action = str(request.path_params["action"])
    if action not in ACTIONS:
        raise NotFound(f"no action {action[:40]!r}: {', '.join(ACTIONS)}")
    services = services_of(request)
    d = services.desk
    if action == "approve":
        await d.approve_comment(slug, chosen, who.editor, EDITOR)
    elif action in ("feature", "unfeature"):
        await d.feature_comment(slug, chosen, action == "feature", who.editor, EDITOR)
    elif action == "clear-reports":
        await d.clear_reports(services.moderation, slug, chosen, who.editor)
    else:
        await d.hide_comment(slug, chosen, who.editor, EDITOR)
    if wants_json(request):
        return JSONResponse({"done": action, "ref": f"{slug}/{chosen}", "by": who.editor})
    return see_other(f"/editor/moderation?done={action}")


routes = [
    *desk_list("/editor/moderation", "queue.html", "Moderation queue", DONE, _queue, _as_json),
    resource("/editor/moderation/{slug}/{comment_id}/{action}", POST=moderate),
]
