"""The reader's HTML pages: the front page, article pages, the no-JavaScript comment form.

Every page embeds, next to what it shows, the position of each topic it shows (taken
atomically with the list, or before the object it describes) so the live client can
subscribe with ``since`` and miss nothing published between render and connect. The
embedding is a JSON data block, never an inline script: the Content-Security-Policy
forbids those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from livefeed import errors, events, limits, models
from livefeed.errors import (
    InvalidInput,
    LivefeedError,
    NotFound,
    RateLimited,
)
from livefeed.pages.render_cache import PRIVATE, SHARED, RenderCache, etag, is_fresh
from livefeed.pages.shared_reads import SharedReads
from livefeed.services import services_of
from livefeed.web import paths
from livefeed.web.failures import error_page_context
from livefeed.web.requests import article_slug, client_address, is_allowed_origin, read_body
from livefeed.web.templating import environment

if TYPE_CHECKING:
    from livefeed.models import Article
    from livefeed.storage.comments import Threads
    from livefeed.storage.content import ArticleVersion

ARTICLE_BRIEFS = 10  # the "Read next" column
FRONT_BRIEFS = 20
FRONT_ARTICLES = 8
ARTICLE_COMMENTS = 50

CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src {paths.script_src()}; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Revalidated every time; article pages, rendered per version, say more (render_cache).
    "Cache-Control": "no-cache",
}

Handler = Callable[[Request], Awaitable[Response]]


_ENV = environment()


def render(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """A page, with the security headers every page carries."""
    context.setdefault("live", None)
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


async def not_found_page(request: Request) -> Response:
    """The HTML 404 page (the app uses it for unknown paths that are not API calls)."""
    return render("404.html", status=404)


def error_page(error: LivefeedError) -> Response:
    return render("error.html", **error_page_context(error, "Something went wrong"))


def _page(handler: Handler) -> Handler:
    """Turn the errors a page can meet into HTML pages instead of JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except NotFound:
            return await not_found_page(request)
        except LivefeedError as exc:
            return error_page(exc)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _query_id(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not models.is_id(value):
        raise InvalidInput(f"{name} must be a listed id")
    return value


# -- the front page -------------------------------------------------------------------------


@_page
async def front_page(request: Request) -> Response:
    """The latest briefs, newest first; ``?before=<id>`` pages through older ones."""
    before = _query_id(request, "before")
    content = services_of(request).content
    listing, articles = await asyncio.gather(
        content.list_briefs(limit=FRONT_BRIEFS + 1, before=before),
        content.latest_articles(FRONT_ARTICLES) if before is None else _no_articles(),
    )
    briefs = listing.items[:FRONT_BRIEFS]
    more = briefs[-1].id if len(listing.items) > FRONT_BRIEFS else None
    discussed = [a.slug for a in articles] + [b.article for b in briefs if b.article]
    # Each count is live through its article's topic; a connection takes a bounded number.
    counted = list(dict.fromkeys(discussed))[: limits.SUBSCRIPTIONS_MAX - 1]
    article_positions = await asyncio.gather(
        *(content.position(events.article_topic(slug)) for slug in counted)
    )
    counts = await content.comments.counts(list(dict.fromkeys(discussed)))
    live = None
    if before is None:  # an archive page stays still; only the latest briefs are live
        positions = {events.BRIEFS: listing.last_event_id}
        for slug, position in zip(counted, article_positions, strict=True):
            positions[events.article_topic(slug)] = position
        live = {
            "page": "front",
            "positions": positions,
            "cursor": events.encode_cursor(positions),
            "briefsLimit": 0,
        }
    return render(
        "front.html",
        page_kind="front",
        briefs=briefs,
        brief_counts=counts,
        articles=articles,
        more_before=more,
        archive=before is not None,
        live=live,
        heading="Earlier news" if before else "Latest news",
    )


async def _no_articles() -> list[Article]:
    return []


# -- the article page -----------------------------------------------------------------------


async def _article_context(request: Request, slug: str) -> dict[str, Any]:
    content = services_of(request).content
    # The position is read before the article, so an update in between is replayed, not lost.
    article_position = await content.position(events.article_topic(slug))
    article = await content.get_article(slug)
    if article is None:
        raise NotFound(f"no article {slug!r}")
    before = _query_id(request, "comments_before")
    briefs, threads, mode, count = await asyncio.gather(
        content.list_briefs(limit=ARTICLE_BRIEFS),
        content.list_comments(slug, limit=ARTICLE_COMMENTS + 1, before=before),
        content.comments.mode(slug),
        content.comments.count(slug),
    )
    comments = _comments_page(threads, first=before is None)
    replying_to = None
    reply_to = _query_id(request, "reply_to")
    if reply_to is not None:
        replying_to = await content.comments.visible(slug, reply_to)
    positions = {
        events.BRIEFS: briefs.last_event_id,
        events.comments_topic(slug): threads.last_event_id,
        events.article_topic(slug): article_position,
    }
    counts = await content.comments.counts([b.article for b in briefs.items if b.article])
    return {
        "page_kind": "article",
        "article": article,
        "briefs": briefs.items,
        "briefs_limit": ARTICLE_BRIEFS,
        "brief_counts": counts,
        **comments,
        "comment_count": count,
        "comment_count_text": comment_count_text(count),
        "comments_closed": mode == "closed",
        "live": _article_live(slug, positions, comments["comments_more"]),
        "form": {"author": "", "text": "", "reply_to": replying_to.id if replying_to else ""},
        "replying_to": replying_to,
        "form_error": None,
        "held": request.query_params.get("held") == "1",
    }


def _comments_page(threads: Threads, first: bool) -> dict[str, Any]:
    """One page of an article's comments; the ``first`` page carries the featured ones."""
    page = threads.items[:ARTICLE_COMMENTS]
    featured = threads.featured if first else []
    pinned = {c.id for c in featured}
    return {
        # Oldest first, new ones append; featured comments are pinned above, not repeated.
        "comments": [t.comment for t in reversed(page) if t.comment.id not in pinned],
        "featured": featured,
        "replies": {t.comment.id: t.replies for t in page},
        "reply_counts": {t.comment.id: t.reply_count for t in page},
        "comments_more": len(threads.items) > ARTICLE_COMMENTS,
        "comments_oldest": page[-1].comment.id if page else None,
    }


def _article_live(slug: str, positions: dict[str, str], more: bool) -> dict[str, Any]:
    return {
        "page": "article",
        "slug": slug,
        "positions": positions,
        "cursor": events.encode_cursor(positions),
        "briefsLimit": ARTICLE_BRIEFS,
        "commentsMore": more,
    }


def comment_count_text(count: int) -> str:
    """What the comment counter says; the client writes the same words."""
    return "1 comment" if count == 1 else f"{count} comments"


class ArticlePages:
    """The article page: its live "Read next" column, its live comments and the comment
    form, rendered once per version of what it shows (see render_cache.py)."""

    def __init__(self) -> None:
        self.cache = RenderCache()  # one per app: apps in one process never share pages
        self.versions: SharedReads[ArticleVersion] = SharedReads()

    async def article_page(self, request: Request) -> Response:
        slug = article_slug(request)
        if request.query_params.get("held") == "1":  # one reader's own notice: never kept
            context = await _article_context(request, slug)
            return render("article.html", headers={"Cache-Control": PRIVATE}, **context)
        # Only what changes the page is the key: other query parameters (?posted=) are not.
        key = (slug, _query_id(request, "comments_before"), _query_id(request, "reply_to"))
        content = services_of(request).content
        version = await self.versions.read(slug, lambda: content.article_version(slug))
        if not version.article_written:
            raise NotFound(f"no article {slug!r}")
        tag = etag(key, version)
        headers = {**PAGE_HEADERS, "Cache-Control": SHARED, "ETag": tag}
        if is_fresh(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers=headers)

        async def rendered() -> bytes:
            context = await _article_context(request, slug)
            return _ENV.get_template("article.html").render(**context).encode()

        # Any well-formed reply_to renders (an unknown one as no reply): kept, such pages
        # would let anyone push the pages readers need out of the cache.
        reply_to = key[2] is not None
        body = await (rendered() if reply_to else self.cache.page(key, version, rendered))
        return Response(body, media_type="text/html", headers=headers)


# -- the comment form without JavaScript ----------------------------------------------------


def _is_allowed_origin(request: Request) -> bool:
    """Browsers send Origin on form posts; refuse ones from sites we do not trust."""
    return is_allowed_origin(request, services_of(request).settings.allowed_origins)


async def _read_form(request: Request) -> dict[str, list[str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise LivefeedError("the form must be sent as application/x-www-form-urlencoded")
    body = await read_body(request)
    try:
        return parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=16, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise LivefeedError("the form could not be read") from None


@_page
async def post_comment_form(request: Request) -> Response:
    """Post a comment from the plain HTML form, then go back to the article (303)."""
    slug = article_slug(request)
    if not _is_allowed_origin(request):
        error = LivefeedError(
            "comments can only be posted from this site", code=errors.FORBIDDEN_ORIGIN
        )
        error.status = 403
        return error_page(error)
    fields = await _read_form(request)
    form = {name: (fields.get(name) or [""])[0] for name in ("author", "text", "reply_to")}
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    try:
        comment = await services.content.post_comment(slug, form, address)
    except (InvalidInput, RateLimited) as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
        context = await _article_context(request, slug)
        context.update(form=form, form_error=exc.message)
        return render("article.html", status=exc.status, headers=headers, **context)
    if comment.status == "pending":
        return RedirectResponse(f"/articles/{slug}?held=1#comments", status_code=303)
    # A URL of its own: no cache (the browser's, a CDN's) holds a page from before the post.
    return RedirectResponse(
        f"/articles/{slug}?posted={comment.id}#comment-{comment.id}", status_code=303
    )


async def comment_form_get(request: Request) -> Response:
    """Reloading the address a failed form post left in the URL bar leads back to the article."""
    slug = request.path_params["slug"]
    if not models.is_slug(slug):
        return await not_found_page(request)
    return RedirectResponse(f"/articles/{slug}#comments", status_code=303)


# -- static files ---------------------------------------------------------------------------


class Assets(StaticFiles):
    """Static files: forever-cacheable under a content-hash URL, revalidated otherwise."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            # A plain URL (no content hash) may change with the next deploy: revalidate.
            response.headers["Cache-Control"] = "no-cache"
        return response


def routes() -> list[BaseRoute]:
    """The page routes and the static files, for ``create_app`` to mount."""
    paths.asset_version("livefeed.css")  # hash once, at startup
    paths.import_map()
    paths.release()  # every file read once, at startup, not by the first reader
    return [
        Route("/", front_page, name="front_page"),
        Route("/articles/{slug}", _page(ArticlePages().article_page), name="article_page"),
        Route(
            "/articles/{slug}/comments",
            post_comment_form,
            methods=["POST"],
            name="post_comment_form",
        ),
        Route("/articles/{slug}/comments", comment_form_get, methods=["GET"]),
        Mount("/static", app=Assets(directory=paths.STATIC_DIR), name="static"),
    ]
