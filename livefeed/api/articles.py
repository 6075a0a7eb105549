"""``/api/articles/{slug}`` and its comments."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from livefeed import models
from livefeed.api.auth import require_editor
from livefeed.errors import NotFound
from livefeed.models import Article
from livefeed.storage.content import API, Content
from livefeed.storage.desk import Desk
from livefeed.storage.moderation import PENDING, Moderation
from livefeed.web.requests import client_address, list_params, read_json


def _content(request: Request) -> Content:
    content: Content = request.app.state.content
    return content


def _desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def _slug(request: Request) -> str:
    slug = str(request.path_params["slug"])
    if not models.is_slug(slug):
        raise NotFound(f"no article {slug[:80]!r}")
    return slug


def _moderation(request: Request) -> Moderation:
    moderation: Moderation = request.app.state.moderation
    return moderation


def _comment_id(request: Request) -> str:
    comment_id = str(request.path_params["comment_id"])
    if not models.is_id(comment_id):
        raise NotFound(f"no comment {comment_id[:64]!r}")
    return comment_id


async def _article_json(content: Content, article: Article) -> dict[str, Any]:
    comments = content.comments
    mode, count = await asyncio.gather(comments.mode(article.slug), comments.count(article.slug))
    return {**article.to_json(), "comment_mode": mode, "comment_count": count}


async def get_article(request: Request) -> Response:
    content = _content(request)
    article = await content.require_article(_slug(request))
    return JSONResponse(await _article_json(content, article))


async def put_article(request: Request) -> Response:
    editor = await require_editor(request)
    slug = _slug(request)
    payload = await read_json(request)
    article, created = await _desk(request).put_article(slug, payload, editor, API)
    # The answer is the article as its event carries it; GET adds comment mode and count.
    return JSONResponse(article.to_json(), status_code=201 if created else 200)


async def list_comments(request: Request) -> Response:
    limit, before = list_params(request)
    listing = await _content(request).list_comments(_slug(request), limit, before)
    items = [thread.to_json() for thread in listing.items]
    featured = [c.to_json() for c in listing.featured]
    body = {"items": items, "featured": featured, "last_event_id": listing.last_event_id}
    return JSONResponse(body)


async def post_comment(request: Request) -> Response:
    slug = _slug(request)
    payload = await read_json(request)
    comment = await _content(request).post_comment(slug, payload, client_address(request))
    return JSONResponse(comment.to_json(), status_code=201)


async def hide_comment(request: Request) -> Response:
    editor = await require_editor(request)
    comment_id = _comment_id(request)
    await _desk(request).hide_comment(_slug(request), comment_id, editor, API)
    return Response(status_code=204)


async def report_comment(request: Request) -> Response:
    slug, comment_id = _slug(request), _comment_id(request)
    payload = await read_json(request)
    await _content(request).require_article(slug)
    await _moderation(request).report(slug, comment_id, payload, client_address(request))
    return JSONResponse({"status": "received"}, status_code=202)


async def moderate_comment(request: Request) -> Response:
    """``approve``, ``feature``, ``unfeature`` or ``clear-reports`` one comment."""
    editor = await require_editor(request)
    slug, comment_id = _slug(request), _comment_id(request)
    action = str(request.path_params["action"])
    desk = _desk(request)
    if action == "approve":
        comment = await desk.approve_comment(slug, comment_id, editor, API)
    elif action in ("feature", "unfeature"):
        featured = action == "feature"
        comment = await desk.feature_comment(slug, comment_id, featured, editor, API)
    elif action == "clear-reports":
        await desk.clear_reports(_moderation(request), slug, comment_id, editor)
        return Response(status_code=204)
    else:
        raise NotFound(f"no action {action[:40]!r}: approve, feature, unfeature, clear-reports")
    return JSONResponse(comment.to_json())


async def moderation_queue(request: Request) -> Response:
    await require_editor(request)
    state = request.query_params.get("state", PENDING)
    moderation = _moderation(request)
    items, sizes = await asyncio.gather(moderation.queue(state), moderation.sizes())
    return JSONResponse({"items": [item.to_json() for item in items], "counts": sizes})


routes = [
    Route("/api/articles/{slug}", get_article, methods=["GET"]),
    Route("/api/articles/{slug}", put_article, methods=["PUT"]),
    Route("/api/articles/{slug}/comments", list_comments, methods=["GET"]),
    Route("/api/articles/{slug}/comments", post_comment, methods=["POST"]),
    Route("/api/articles/{slug}/comments/{comment_id}", hide_comment, methods=["DELETE"]),
    Route("/api/articles/{slug}/comments/{comment_id}/reports", report_comment, methods=["POST"]),
    Route(
        "/api/articles/{slug}/comments/{comment_id}/{action}", moderate_comment, methods=["POST"]
    ),
    Route("/api/moderation", moderation_queue, methods=["GET"]),
]
