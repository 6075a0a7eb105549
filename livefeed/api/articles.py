"""``/api/articles/{slug}`` and its comments."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from livefeed.api.auth import require_editor
from livefeed.errors import NotFound
from livefeed.models import Article
from livefeed.services import services_of
from livefeed.storage.content import API, Content
from livefeed.storage.moderation import PENDING
from livefeed.web.requests import article_slug, client_address, comment_id, list_params, read_json
from livefeed.web.routing import resource


async def _article_json(content: Content, article: Article) -> dict[str, Any]:
    comments = content.comments
    mode, count = await asyncio.gather(comments.mode(article.slug), comments.count(article.slug))
    return {**article.to_json(), "comment_mode": mode, "comment_count": count}


async def get_article(request: Request) -> Response:
    content = services_of(request).content
    article = await content.require_article(article_slug(request))
    return JSONResponse(await _article_json(content, article))


async def put_article(request: Request) -> Response:
    editor = await require_editor(request)
    slug = article_slug(request)
    payload = await read_json(request)
    article, created = await services_of(request).desk.put_article(slug, payload, editor, API)
    # The answer is the article as its event carries it; GET adds comment mode and count.
    return JSONResponse(article.to_json(), status_code=201 if created else 200)


async def list_comments(request: Request) -> Response:
    limit, before = list_params(request)
    listing = await services_of(request).content.list_comments(article_slug(request), limit, before)
    items = [thread.to_json() for thread in listing.items]
    featured = [c.to_json() for c in listing.featured]
    body = {"items": items, "featured": featured, "last_event_id": listing.last_event_id}
    return JSONResponse(body)


async def post_comment(request: Request) -> Response:
    slug = article_slug(request)
    payload = await read_json(request)
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    comment = await services.content.post_comment(slug, payload, address)
    return JSONResponse(comment.to_json(), status_code=201)


async def hide_comment(request: Request) -> Response:
    editor = await require_editor(request)
    desk = services_of(request).desk
    await desk.hide_comment(article_slug(request), comment_id(request), editor, API)
    return Response(status_code=204)


async def report_comment(request: Request) -> Response:
    slug, reported = article_slug(request), comment_id(request)
    payload = await read_json(request)
    services = services_of(request)
    await services.content.require_article(slug)
    address = client_address(request, services.settings.trusted_proxies)
    await services.moderation.report(slug, reported, payload, address)
    return JSONResponse({"status": "received"}, status_code=202)


async def moderate_comment(request: Request) -> Response:
    """``approve``, ``feature``, ``unfeature`` or ``clear-reports`` one comment."""
    editor = await require_editor(request)
    slug, chosen = article_slug(request), comment_id(request)
    action = str(request.path_params["action"])
    services = services_of(request)
    desk = services.desk
    if action == "approve":
        comment = await desk.approve_comment(slug, chosen, editor, API)
    elif action in ("feature", "unfeature"):
        featured = action == "feature"
        comment = await desk.feature_comment(slug, chosen, featured, editor, API)
    elif action == "clear-reports":
        await desk.clear_reports(services.moderation, slug, chosen, editor)
        return Response(status_code=204)
    else:
        raise NotFound(f"no action {action[:40]!r}: approve, feature, unfeature, clear-reports")
    return JSONResponse(comment.to_json())


async def moderation_queue(request: Request) -> Response:
    await require_editor(request)
    state = request.query_params.get("state", PENDING)
    moderation = services_of(request).moderation
    items, sizes = await asyncio.gather(moderation.queue(state), moderation.sizes())
    return JSONResponse({"items": [item.to_json() for item in items], "counts": sizes})


routes = [
    resource("/api/articles/{slug}", GET=get_article, PUT=put_article),
    resource("/api/articles/{slug}/comments", GET=list_comments, POST=post_comment),
    resource("/api/articles/{slug}/comments/{comment_id}", DELETE=hide_comment),
    resource("/api/articles/{slug}/comments/{comment_id}/reports", POST=report_comment),
    resource("/api/articles/{slug}/comments/{comment_id}/{action}", POST=moderate_comment),
    resource("/api/moderation", GET=moderation_queue),
]
