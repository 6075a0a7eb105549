"""The desk: publish a brief, and the live list of recent briefs to correct or retract.

Every form works without JavaScript (post, then a redirect back); the desk's script sends
the same forms with ``Accept: application/json`` and gets JSON back.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from livefeed import events, limits, models
from livefeed.editor.session import require_signed_in
from livefeed.editor.views import page, render, see_other, signed_form, wants_json
from livefeed.errors import Conflict, InvalidInput, NotFound
from livefeed.models import Brief
from livefeed.services import services_of
from livefeed.storage.content import EDITOR
from livefeed.storage.desk import BRIEF
from livefeed.web.requests import brief_id
from livefeed.web.routing import resource

DONE = {
    "published": "Published.",
    "corrected": "Corrected: readers see the new version.",
    "retracted": "Retracted: the brief is gone from every open page.",
    "unchanged": "Nothing was changed.",
}


_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029]")


def brief_fields(form: dict[str, str]) -> dict[str, Any]:
    """A brief's fields from the desk's form. A brief is one line: line breaks (a paste, a
    no-JavaScript textarea) become spaces."""
    return {
        "text": _LINE_BREAKS.sub(" ", form.get("text", "")),
        "breaking": form.get("breaking", "") in {"1", "on", "true"},
        "article": form.get("article") or None,
    }


def brief_json(brief: Brief, credits: dict[str, str]) -> dict[str, Any]:
    """A brief as the desk's script sees it: the reader's fields plus its credits."""
    return {**brief.to_json(), "credits": credits}


async def _desk_context(request: Request) -> dict[str, Any]:
    services = services_of(request)
    d = services.desk
    listing, articles, readers, activity = await asyncio.gather(
        d.content.list_briefs(limit=limits.DESK_BRIEFS),
        d.articles(),
        services.presence.read(),
        d.activity(),
    )
    credits = await d.credits(BRIEF, [b.id for b in listing.items])
    push = services.push.get_or_none()  # who a breaking brief will notify
    push_subscribers = None if push is None else await push.store.count()
    titles = {row.article.slug: row.article.title for row in articles}
    return {
        "heading": "Desk",
        "section": "desk",
        "briefs": listing.items,
        "credits": credits,
        "articles": [row.article for row in articles],
        "titles": titles,
        "readers": readers,
        "push_subscribers": push_subscribers,
        "activity": activity,
        "form": {"text": "", "breaking": False, "article": None},
        "notice": DONE.get(request.query_params.get("done", "")),
        "desk": {
            "page": "desk",
            "positions": {events.BRIEFS: listing.last_event_id},
            "articles": titles,
            "briefs": [brief_json(b, credits[b.id]) for b in listing.items],
            "max": limits.BRIEF_TEXT_MAX,
        },
    }


@page
async def desk_page(request: Request) -> Response:
    await require_signed_in(request)
    return render(request, "desk.html", **await _desk_context(request))


@page
async def publish(request: Request) -> Response:
    form, who = await signed_form(request)
    fields = brief_fields(form)
    try:
        brief = models.new_brief(fields)
        published = await services_of(request).desk.publish_brief(brief, who.editor, EDITOR)
    except InvalidInput as exc:
        if wants_json(request):
            raise
        context = await _desk_context(request)
        context.update(form=fields, error=exc.message)
        return render(request, "desk.html", status=exc.status, **context)
    if wants_json(request):
        body = brief_json(published, {"published": who.editor})
        return JSONResponse(body, status_code=201)
    return see_other(f"/editor?done=published#brief-{published.id}")


async def _current(request: Request, target: str) -> Brief:
    brief = await services_of(request).desk.content.get_brief(target)
    if brief is None:
        raise NotFound("no such brief: it may have been retracted")
    return brief


@page
async def correct_form(request: Request) -> Response:
    await require_signed_in(request)
    brief = await _current(request, brief_id(request))
    desk = services_of(request).desk
    articles = await desk.articles()
    credits = (await desk.credits(BRIEF, [brief.id]))[brief.id]
    return render(
        request,
        "brief_correct.html",
        heading="Correct a brief",
        section="desk",
        brief=brief,
        form=brief.to_json(),
        credits=credits,
        articles=[row.article for row in articles],
    )


@page
async def correct(request: Request) -> Response:
    form, who = await signed_form(request)
    target = brief_id(request)
    desk = services_of(request).desk
    current = await _current(request, target)
    wanted = brief_fields(form)
    changes = {
        name: value
        for name, value in wanted.items()
        if (value.strip() if isinstance(value, str) else value) != getattr(current, name)
    }
    brief = current
    try:
        if changes:
            base = form.get("base") or None
            brief = await desk.correct_brief(target, changes, who.editor, EDITOR, base)
    except (InvalidInput, Conflict) as exc:
        if wants_json(request):
            raise
        articles = await desk.articles()
        return render(
            request,
            "brief_correct.html",
            status=exc.status,
            heading="Correct a brief",
            section="desk",
            brief=current,
            form={**current.to_json(), **wanted},
            credits=(await desk.credits(BRIEF, [target]))[target],
            articles=[row.article for row in articles],
            error=exc.message,
        )
    if wants_json(request):
        credits = (await desk.credits(BRIEF, [target]))[target]
        return JSONResponse(brief_json(brief, credits))
    done = "corrected" if changes else "unchanged"
    return see_other(f"/editor?done={done}#brief-{target}")


@page
async def retract_form(request: Request) -> Response:
    await require_signed_in(request)
    brief = await _current(request, brief_id(request))
    return render(
        request, "brief_retract.html", heading="Retract a brief", section="desk", brief=brief
    )


@page
async def retract(request: Request) -> Response:
    _form, who = await signed_form(request)
    target = brief_id(request)
    await services_of(request).desk.retract_brief(target, who.editor, EDITOR)
    if wants_json(request):
        return JSONResponse({"retracted": target, "by": who.editor})
    return see_other("/editor?done=retracted")


@page
async def briefs_data(request: Request) -> Response:
    """The desk's list as JSON, for the script to refetch after missing events."""
    await require_signed_in(request)
    d = services_of(request).desk
    listing = await d.content.list_briefs(limit=limits.DESK_BRIEFS)
    credits = await d.credits(BRIEF, [b.id for b in listing.items])
    items = [brief_json(b, credits[b.id]) for b in listing.items]
    return JSONResponse({"items": items, "last_event_id": listing.last_event_id})


@page
async def credits_data(request: Request) -> Response:
    """``?kind=brief&id=...`` (ids repeated): which editor did what to each."""
    await require_signed_in(request)
    kind = request.query_params.get("kind", "")
    ids = request.query_params.getlist("id")[: limits.LIST_LIMIT_MAX]
    if kind not in {"brief", "article", "comment"}:
        raise InvalidInput("kind must be brief, article or comment")
    return JSONResponse(await services_of(request).desk.credits(kind, ids))


routes = [
    resource("/editor", GET=desk_page),
    resource("/editor/briefs", POST=publish),
    resource("/editor/briefs/{brief_id}", POST=correct),
    resource("/editor/briefs/{brief_id}/correct", GET=correct_form),
    resource("/editor/briefs/{brief_id}/retract", GET=retract_form, POST=retract),
    resource("/editor/data/briefs", GET=briefs_data),
    resource("/editor/data/credits", GET=credits_data),
]
