"""Articles at the desk: the list (with readers now and the comments switch), create, edit.

The body is edited as plain text, one paragraph per block separated by a blank line.
Saving an edit names the version it started from, so an editor never silently overwrites
a colleague's newer save (409, with who saved).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from livefeed import models
from livefeed.editor.session import require_signed_in
from livefeed.editor.views import page, render, see_other, signed_form, wants_json
from livefeed.errors import Conflict, InvalidInput
from livefeed.models import Article
from livefeed.services import services_of
from livefeed.storage.content import EDITOR
from livefeed.storage.desk import ARTICLE
from livefeed.web.requests import article_slug
from livefeed.web.routing import resource

DONE = {
    "created": "Article created.",
    "updated": "Article saved: open pages show the new version.",
    "closed": "Comments closed: readers can no longer post on that article.",
    "opened": "Comments open again.",
    "open": "Comments are open: readers' comments appear at once.",
    "premoderated": "Comments are pre-moderated: each waits in the moderation queue.",
}


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def paragraphs(body: str) -> list[str]:
    """The body's paragraphs: blocks of text between blank lines."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def article_fields(form: dict[str, str]) -> dict[str, Any]:
    return {
        "title": form.get("title", ""),
        "summary": form.get("summary", ""),
        "body": paragraphs(form.get("body", "")),
    }


def _form_values(article: Article | None, form: dict[str, str] | None = None) -> dict[str, str]:
    if form is not None:
        return {n: form.get(n, "") for n in ("slug", "title", "summary", "body", "base")}
    if article is None:
        return {"slug": "", "title": "", "summary": "", "body": "", "base": ""}
    return {
        "slug": article.slug,
        "title": article.title,
        "summary": article.summary,
        "body": "\n\n".join(article.body),
        "base": article.updated_at,
    }


@page
async def articles_page(request: Request) -> Response:
    await require_signed_in(request)
    services = services_of(request)
    rows, readers = await asyncio.gather(services.desk.articles(), services.presence.read())
    credits = await services.desk.credits(ARTICLE, [r.article.slug for r in rows])
    return render(
        request,
        "articles.html",
        heading="Articles",
        section="articles",
        rows=rows,
        credits=credits,
        readers=readers,
        notice=DONE.get(request.query_params.get("done", "")),
        desk={"page": "articles"},
    )


def _article_form(
    request: Request,
    article: Article | None,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    error: str | None = None,
    closed: bool = False,
    credits: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "article_form.html",
        status=status,
        heading="New article" if article is None else "Edit article",
        section="articles",
        article=article,
        form=_form_values(article, form),
        closed=closed,
        credits=credits or {},
        error=error,
        notice=DONE.get(request.query_params.get("done", "")),
        desk={"page": "article"},
    )


@page
async def new_article_form(request: Request) -> Response:
    await require_signed_in(request)
    return _article_form(request, None)


@page
async def edit_article_form(request: Request) -> Response:
    await require_signed_in(request)
    slug = article_slug(request)
    desk = services_of(request).desk
    article = await desk.content.require_article(slug)
    closed = await desk.content.are_comments_closed(slug)
    credits = (await desk.credits(ARTICLE, [slug]))[slug]
    return _article_form(request, article, closed=closed, credits=credits)


async def _save(request: Request, slug: str | None) -> Response:
    form, who = await signed_form(request)
    new = slug is None
    target = form.get("slug", "").strip() if slug is None else slug
    desk = services_of(request).desk
    current = None if new else await desk.content.require_article(target)
    try:
        if new and not models.is_slug(target):
            raise InvalidInput("the address must be 1-80 of a-z, 0-9 and -, like talks-in-moscow")
        article, created = await desk.put_article(
            target,
            article_fields(form),
            who.editor,
            EDITOR,
            base=None if new else (form.get("base") or None),
            new=new,
        )
    except (InvalidInput, Conflict) as exc:
        if wants_json(request):
            raise
        return _article_form(request, current, status=exc.status, form=form, error=exc.message)
    if wants_json(request):
        return JSONResponse(article.to_json(), status_code=201 if created else 200)
    done = "created" if created else "updated"
    return see_other(f"/editor/articles/{article.slug}/edit?done={done}")


@page
async def create_article(request: Request) -> Response:
    return await _save(request, None)


@page
async def update_article(request: Request) -> Response:
    return await _save(request, article_slug(request))


@page
async def switch_comments(request: Request) -> Response:
    """Close an article's comments (``closed=1``) or open them again (``closed=0``)."""
    form, who = await signed_form(request)
    slug = article_slug(request)
    desk = services_of(request).desk
    if "mode" in form:  # open, premoderated or closed
        await desk.set_comment_mode(slug, form["mode"], who.editor)
        if wants_json(request):
            return JSONResponse({"article": slug, "mode": form["mode"], "by": who.editor})
        return see_other(f"/editor/articles?done={form['mode']}")
    closed = form.get("closed") == "1"
    await desk.close_comments(slug, closed, who.editor)
    if wants_json(request):
        return JSONResponse({"article": slug, "closed": closed, "by": who.editor})
    back = form.get("back", "")
    done = "closed" if closed else "opened"
    if back == "comments":
        return see_other(f"/editor/comments?done={done}")
    if back == "edit":
        return see_other(f"/editor/articles/{slug}/edit?done={done}")
    return see_other(f"/editor/articles?done={done}")


routes = [
    resource("/editor/articles", GET=articles_page, POST=create_article),
    resource("/editor/articles/new", GET=new_article_form),
    resource("/editor/articles/{slug}", POST=update_article),
    resource("/editor/articles/{slug}/edit", GET=edit_article_form),
    resource("/editor/articles/{slug}/comments", POST=switch_comments),
]
