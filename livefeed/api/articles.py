"""``/api/articles/{slug}`` and its comments."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from livefeed import models
from livefeed.api.auth import require_editor
from livefeed.errors import NotFound
from livefeed.http import client_address, list_params, read_json
from livefeed.storage.content import API, Content
from livefeed.storage.desk import Desk


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


async def get_article(request: Request) -> Response:
    article = await _content(request).require_article(_slug(request))
    return JSONResponse(article.to_json())


async def put_article(request: Request) -> Response:
    editor = await require_editor(request)
    slug = _slug(request)
    payload = await read_json(request)
    article, created = await _desk(request).put_article(slug, payload, editor, API)
    return JSONResponse(article.to_json(), status_code=201 if created else 200)


async def list_comments(request: Request) -> Response:
    limit, before = list_params(request)
    listing = await _content(request).list_comments(_slug(request), limit, before)
    items = [c.to_json() for c in listing.items]
    return JSONResponse({"items": items, "last_event_id": listing.last_event_id})


async def post_comment(request: Request) -> Response:
    slug = _slug(request)
    payload = await read_json(request)
    comment = await _content(request).post_comment(slug, payload, client_address(request))
    return JSONResponse(comment.to_json(), status_code=201)


async def hide_comment(request: Request) -> Response:
    editor = await require_editor(request)
    comment_id = str(request.path_params["comment_id"])
    if not models.is_id(comment_id):
        raise NotFound(f"no comment {comment_id[:64]!r}")
    await _desk(request).hide_comment(_slug(request), comment_id, editor, API)
    return Response(status_code=204)


routes = [
    Route("/api/articles/{slug}", get_article, methods=["GET"]),
    Route("/api/articles/{slug}", put_article, methods=["PUT"]),
    Route("/api/articles/{slug}/comments", list_comments, methods=["GET"]),
    Route("/api/articles/{slug}/comments", post_comment, methods=["POST"]),
    Route("/api/articles/{slug}/comments/{comment_id}", hide_comment, methods=["DELETE"]),
]
