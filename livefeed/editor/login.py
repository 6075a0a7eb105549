"""Signing in and out of the editor pages.

An editor signs in with their account (``livefeed editor add``), the operator as
``operator`` with the operator token. A wrong name and a wrong password get the same
answer, after the same work; attempts are counted per name and per address first, so a
lockout says nothing about whether the account exists either. The name typed is never
logged when sign-in fails (people type passwords into the name field).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response

from livefeed.editor import session as web_session
from livefeed.editor.views import page, read_form, render, see_other, signed_form
from livefeed.errors import Forbidden, RateLimited
from livefeed.services import services_of
from livefeed.storage.editors import OPERATOR, clean_name, is_operator_token
from livefeed.web.requests import client_address
from livefeed.web.routing import resource

logger = logging.getLogger("livefeed.editor")

_NAME_MAX = 64  # longer than any editor name: the rest is not worth hashing


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a page of the editor desk (no open redirect)."""
    if not target or "//" in target or "\\" in target:
        return "/editor"
    if target == "/editor" or target.startswith(("/editor/", "/editor?", "/editor#")):
        return target
    return "/editor"


def _login_page(
    request: Request, status: int = 200, error: str | None = None, name: str = ""
) -> Response:
    token = web_session.login_token(request)
    target = _safe_next(request.query_params.get("next"))
    response = render(
        request,
        "login.html",
        status=status,
        heading="Sign in",
        login_csrf=token,
        name=name,
        next=target,
        error=error,
    )
    web_session.set_login_cookie(response, request, token)
    return response


@page
async def login_form(request: Request) -> Response:
    if await web_session.signed_in(request) is not None:
        return see_other(_safe_next(request.query_params.get("next")))
    return _login_page(request)


async def _is_password(request: Request, name: str, password: str) -> bool:
    if name == OPERATOR:
        return is_operator_token(services_of(request).settings.editor_token, password)
    return await services_of(request).editors.verify_password(name, password)


@page
async def login(request: Request) -> Response:
    web_session.require_same_site(request)
    form = await read_form(request)
    try:
        web_session.check_login_token(request, form.get("csrf"))
    except Forbidden as exc:
        return _login_page(request, exc.status, exc.message)
    name = clean_name(form.get("name", ""))[:_NAME_MAX]
    password = form.get("password", "")
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    guard = services.logins
    try:
        backoff = await guard.attempt(name, address)
    except RateLimited as exc:
        logger.warning("sign-in refused: too many attempts (from %s)", address)
        response = _login_page(request, 429, exc.message, name)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if backoff:
        # The name is being guessed from elsewhere too: slow every attempt, lock none.
        await asyncio.sleep(backoff)
    if not name or not password or not await _is_password(request, name, password):
        logger.info("failed sign-in from %s", address)
        return _login_page(request, 401, "Wrong name or password.", name)
    await guard.succeeded(name, address)
    version = await web_session.account_version(request, name)
    if version is None:  # removed while signing in
        return _login_page(request, 401, "Wrong name or password.", name)
    sessions = services.sessions
    previous = await web_session.signed_in(request)
    if previous is not None:  # signing in as someone else in the same browser
        await sessions.end(previous.session.id)
    new = await sessions.start(name, version)
    logger.info("editor %s signed in from %s", name, address)
    response = see_other(_safe_next(form.get("next")))
    web_session.set_session_cookie(response, request, new)
    response.delete_cookie(web_session.LOGIN_COOKIE, path=web_session.PATH)
    return response


@page
async def logout(request: Request) -> Response:
    _form, who = await signed_form(request)
    await services_of(request).sessions.end(who.session.id)
    logger.info("editor %s signed out", who.editor)
    response = see_other("/editor/login")
    web_session.clear_session_cookie(response, request)
    return response


routes = [
    resource("/editor/login", GET=login_form, POST=login),
    resource("/editor/logout", POST=logout),
]
