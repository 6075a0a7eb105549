"""Comment moderation: the latest comments across articles, live, with hide and the
per-article switch that closes comments.

Hidden comments stay in this view, marked with who hid them: the desk keeps the record
readers no longer see.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from livefeed import limits
from livefeed.editor.session import require_signed_in
from livefeed.editor.views import desk_list, page, see_other, signed_form, wants_json
from livefeed.models import Comment
from livefeed.services import services_of
from livefeed.storage.content import EDITOR
from livefeed.storage.desk import COMMENT, comment_ref
from livefeed.web.requests import article_slug, comment_id
from livefeed.web.routing import resource

DONE = {
    "hidden": "Comment hidden: it is gone from readers' pages.",
    "closed": "Comments closed on that article.",
    "opened": "Comments open again on that article.",
}


def comment_json(comment: Comment, credits: dict[str, str]) -> dict[str, Any]:
    ref = comment_ref(comment.article, comment.id)
    return {**comment.to_record(), "ref": ref, "hidden_by": credits.get("hidden")}


async def _moderation(request: Request) -> dict[str, Any]:
    """The latest comments and their articles, for a signed-in editor."""
    await require_signed_in(request)
    services = services_of(request)
    d = services.desk
    comments, rows, readers = await asyncio.gather(
        d.recent_comments(limits.DESK_COMMENTS), d.articles(), services.presence.read()
    )
    credits = await d.credits(COMMENT, [comment_ref(c.article, c.id) for c in comments])
    titles = {row.article.slug: row.article.title for row in rows}
    closed = {row.article.slug: row.comments_closed for row in rows}
    discussed = list(dict.fromkeys(c.article for c in comments))  # newest comment first
    for slug in discussed:
        if slug not in closed:  # an article beyond the desk's list
            closed[slug] = await d.content.are_comments_closed(slug)
    return {
        "comments": comments,
        "credits": credits,
        "titles": titles,
        "closed": closed,
        "discussed": discussed,
        "readers": readers,
    }


def _as_json(found: dict[str, Any]) -> dict[str, Any]:
    credits, comments = found["credits"], found["comments"]
    items = [comment_json(c, credits[comment_ref(c.article, c.id)]) for c in comments]
    return {"items": items, "articles": found["titles"], "closed": found["closed"]}


@page
async def hide(request: Request) -> Response:
    _form, who = await signed_form(request)
    slug, hidden = article_slug(request), comment_id(request)
    await services_of(request).desk.hide_comment(slug, hidden, who.editor, EDITOR)
    if wants_json(request):
        return JSONResponse({"hidden": comment_ref(slug, hidden), "by": who.editor})
    return see_other(f"/editor/comments?done=hidden#comment-{hidden}")


routes = [
    *desk_list("/editor/comments", "comments.html", "Comments", DONE, _moderation, _as_json),
    resource("/editor/articles/{slug}/comments/{comment_id}/hide", POST=hide),
]
