"""Rendering the editor pages: templates under ``templates/editor/``, their headers, forms.

The pages extend the reader pages' ``base.html`` and their CSS, add ``editor.css`` and,
for the live parts, ``static/editor/desk.js`` (which reuses the reader's live client).
Editor pages are private and change all the time: they are never cached, and never framed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from livefeed.editor.session import SignedIn, require_writer, signed_in
from livefeed.errors import LivefeedError, Unauthorized
from livefeed.storage.desk import Activity
from livefeed.web import paths
from livefeed.web.failures import error_page_context, retry_headers
from livefeed.web.requests import read_body
from livefeed.web.routing import resource
from livefeed.web.templating import environment

CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src {paths.script_src()}; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_FORM_FIELDS_MAX = 16

Handler = Callable[[Request], Awaitable[Response]]


def byline(credits: dict[str, str]) -> str:
    """``by alice · corrected by bob`` from a brief's or article's credits."""
    parts = []
    for action, label in (
        ("published", "by"),
        ("created", "by"),
        ("corrected", "corrected by"),
        ("updated", "updated by"),
    ):
        if action in credits:
            parts.append(f"{label} {credits[action]}")
    return " · ".join(parts)


_DID = {
    ("brief", "published"): "published",
    ("brief", "corrected"): "corrected",
    ("brief", "retracted"): "retracted",
    ("article", "created"): "created the article",
    ("article", "updated"): "updated the article",
    ("article", "closed comments"): "closed comments on",
    ("article", "opened comments"): "opened comments on",
    ("comment", "hidden"): "hid the comment",
}


def did(entry: Activity) -> str:
    """What an editor did, as the desk log says it: ``closed comments on``."""
    return _DID.get((entry.kind, entry.action), f"{entry.action} ({entry.kind})")


_ENV = environment({"byline": byline, "did": did})


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """An editor page; ``signed_in`` comes from the request (looked up beforehand)."""
    state = request.scope.get("state", {})
    who: SignedIn | None = state.get("signed_in")
    context.setdefault("live", None)
    context.setdefault("desk", None)
    context.setdefault("section", "")
    context.setdefault("notice", None)
    context.setdefault("error", None)
    context.setdefault("page_kind", "editor")
    html = _ENV.get_template(f"editor/{template}").render(
        signed_in=who, csrf=who.csrf if who else "", **context
    )
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def desk_list(
    path: str,
    template: str,
    heading: str,
    done: dict[str, str],
    load: Callable[[Request], Awaitable[dict[str, Any]]],
    as_json: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[BaseRoute]:
    """The routes of a desk list named after its template (``queue.html``: section, script
    page and ``/editor/data/queue``): its page at ``path``, with the notice its last action
    left (``?done=``), and its JSON, which the script refetches after missing notices.
    ``load`` reads the list (with ``titles``, the articles' titles) for a signed-in editor."""
    section = template.removesuffix(".html")

    async def list_page(request: Request) -> Response:
        found = await load(request)
        return render(
            request,
            template,
            heading=heading,
            section=section,
            notice=done.get(request.query_params.get("done", "")),
            desk={"page": section, "articles": found["titles"]},
            **found,
        )

    async def list_data(request: Request) -> Response:
        return JSONResponse(as_json(await load(request)))

    return [
        resource(path, GET=page(list_page)),
        resource(f"/editor/data/{section}", GET=page(list_data)),
    ]


def wants_json(request: Request) -> bool:
    """The page's script asks for JSON (and ``/editor/data/`` is JSON only); a plain form
    post gets HTML."""
    return request.url.path.startswith("/editor/data/") or "application/json" in (
        request.headers.get("accept", "")
    )


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def login_url(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return "/editor/login?next=" + quote(target, safe="/")


def error_response(request: Request, error: LivefeedError) -> Response:
    if wants_json(request):
        return JSONResponse(error.to_json(), status_code=error.status, headers=retry_headers(error))
    if isinstance(error, Unauthorized):
        return see_other(login_url(request) if request.method == "GET" else "/editor/login")
    return render(request, "error.html", **error_page_context(error, "That did not work"))


def page(handler: Handler) -> Handler:
    """Look up who is signed in, and turn the errors a handler meets into pages (or JSON)."""

    async def endpoint(request: Request) -> Response:
        try:
            await signed_in(request)
            return await handler(request)
        except LivefeedError as exc:
            return error_response(request, exc)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


async def signed_form(request: Request) -> tuple[dict[str, str], SignedIn]:
    """A write's form and the editor who sent it: 401 without a session, 403 without the
    session's CSRF token (or from another site)."""
    form = await read_form(request)
    return form, await require_writer(request, form)


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form (the first value of each field); 400 if it is anything else."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise LivefeedError("send the form as application/x-www-form-urlencoded")
    body = await read_body(request)
    try:
        fields = parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=_FORM_FIELDS_MAX,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise LivefeedError("the form could not be read") from None
    return {name: values[0] for name, values in fields.items()}
