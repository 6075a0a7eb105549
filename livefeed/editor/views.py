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

from livefeed import limits
from livefeed.editor.session import SignedIn, signed_in
from livefeed.errors import LivefeedError, RateLimited, Unauthorized, Unavailable
from livefeed.storage.desk import Activity
from livefeed.web import paths
from livefeed.web.requests import read_body
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


def list_page(
    request: Request, template: str, heading: str, done: dict[str, str], found: dict[str, Any]
) -> HTMLResponse:
    """A desk list named after its template (``queue.html``: section and script page
    ``queue``), with the notice its last action left (``?done=``) and the article titles."""
    section = template.removesuffix(".html")
    return render(
        request,
        template,
        heading=heading,
        section=section,
        notice=done.get(request.query_params.get("done", "")),
        desk={"page": section, "articles": found["titles"]},
        **found,
    )


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


def error_headers(error: LivefeedError) -> dict[str, str]:
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, Unavailable):
        return {"Retry-After": str(limits.RETRY_AFTER_REDIS_DOWN)}
    return {}


def error_response(request: Request, error: LivefeedError) -> Response:
    if wants_json(request):
        return JSONResponse(error.to_json(), status_code=error.status, headers=error_headers(error))
    if isinstance(error, Unauthorized):
        return see_other(login_url(request) if request.method == "GET" else "/editor/login")
    heading = {
        403: "Not allowed",
        404: "Not found",
        409: "Changed meanwhile",
        413: "Too large",
        429: "Too many requests",
        503: "Temporarily unavailable",
    }.get(error.status, "That did not work")
    return render(
        request,
        "error.html",
        status=error.status,
        headers=error_headers(error),
        heading=heading,
        message=error.message,
    )


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
