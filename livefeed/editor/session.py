"""Who is signed in: the signed session cookie, its CSRF token and the same-site checks.

The cookie holds a random session id and an HMAC of it under the signing key
(``LIVEFEED_SECRET_KEY``, or one kept in Redis): a forged or altered cookie is refused
before Redis is asked. It is ``HttpOnly``, ``SameSite=Lax``, ``Secure`` when the request
came over HTTPS, and sent only to ``/editor``. Every write needs, besides the session, the
session's CSRF token (a form field or the ``X-CSRF-Token`` header) and a request that is
not cross-site (``Sec-Fetch-Site``, ``Origin``): without a session the answer is 401, with
one but without the rest it is 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from livefeed import errors, limits
from livefeed.errors import Forbidden, Unauthorized
from livefeed.services import services_of
from livefeed.storage.editors import OPERATOR
from livefeed.storage.sessions import Session, Sessions
from livefeed.web.requests import is_allowed_origin, is_https

COOKIE = "livefeed_session"
LOGIN_COOKIE = "livefeed_login"  # the sign-in form's own CSRF token, before any session
PATH = "/editor"
CSRF_HEADER = "x-csrf-token"
_COOKIE_MAX = 256


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The editor behind a request, and the session they signed in with."""

    editor: str
    session: Session

    @property
    def csrf(self) -> str:
        return self.session.csrf


def sign(key: bytes, value: str) -> str:
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return value + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def unsign(key: bytes, signed: str) -> str | None:
    """The value of a cookie made by ``sign``, or None if it was not (or was altered)."""
    value, dot, _ = signed.rpartition(".")
    if not dot or not value:
        return None
    return value if hmac.compare_digest(sign(key, value).encode(), signed.encode()) else None


def operator_version(token: str | None) -> str | None:
    """Sessions of the operator end when the operator token changes."""
    if not token:
        return None
    return hashlib.sha256(b"operator-session:" + token.encode()).hexdigest()[:16]


async def account_version(request: Request, editor: str) -> str | None:
    if editor == OPERATOR:
        return operator_version(services_of(request).settings.editor_token)
    return await services_of(request).editors.version(editor)


def _sessions(request: Request) -> Sessions:
    return services_of(request).sessions


def _signing_key(request: Request) -> bytes:
    return services_of(request).session_key.get()


def _is_https(request: Request) -> bool:
    return is_https(request, services_of(request).settings.trusted_proxies)


async def signed_in(request: Request) -> SignedIn | None:
    """The signed-in editor, or None (no cookie, a bad one, an ended session)."""
    if "signed_in" in request.scope.get("state", {}):
        found: SignedIn | None = request.state.signed_in
        return found
    found = None
    raw = request.cookies.get(COOKIE, "")
    session_id = unsign(_signing_key(request), raw) if len(raw) < _COOKIE_MAX else None
    if session_id is not None:
        session = await _sessions(request).find(session_id)
        if session is not None:
            version = await account_version(request, session.editor)
            if version is not None and hmac.compare_digest(version, session.version):
                found = SignedIn(session.editor, session)
            else:
                await _sessions(request).end(session_id)  # password changed, account removed
    request.state.signed_in = found
    return found


async def require_signed_in(request: Request) -> SignedIn:
    found = await signed_in(request)
    if found is None:
        raise Unauthorized("sign in at /editor/login first (or your session has ended)")
    return found


def require_same_site(request: Request) -> None:
    """Refuse a write that another site's page made the browser send."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise Forbidden("cross-site requests cannot change anything here")
    if not is_allowed_origin(request, services_of(request).settings.allowed_origins):
        raise Forbidden("this origin cannot change anything here", code=errors.FORBIDDEN_ORIGIN)


def _same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest((given or "").encode(), expected.encode())


async def require_writer(request: Request, form: dict[str, str]) -> SignedIn:
    """The signed-in editor of a write: 401 without a session, 403 without its CSRF token."""
    found = await require_signed_in(request)
    require_same_site(request)
    given = form.get("csrf") or request.headers.get(CSRF_HEADER)
    if not _same_token(given, found.csrf):
        raise Forbidden(
            "this form has expired or did not come from the editor pages: reload and try again",
            code=errors.CSRF_FAILED,
        )
    return found


def _set(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )


def set_session_cookie(response: Response, request: Request, session: Session) -> None:
    value = sign(_signing_key(request), session.id)
    _set(response, request, COOKIE, value, limits.SESSION_MAX)


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, httponly=True, samesite="lax", secure=_is_https(request)
    )


def login_token(request: Request) -> str:
    """The sign-in form's CSRF token: the browser's, or a new one (set it with the page)."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    return current if 20 <= len(current) <= 64 else secrets.token_urlsafe(24)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    _set(response, request, LOGIN_COOKIE, token, limits.SESSION_IDLE)


def check_login_token(request: Request, given: str | None) -> None:
    if not _same_token(given, request.cookies.get(LOGIN_COOKIE, "")):
        raise Forbidden("the sign-in form expired: please try again", code=errors.CSRF_FAILED)


async def is_still_signed_in(request: Request, who: SignedIn) -> bool:
    """Whether ``who``'s session still stands (not signed out, expired or invalidated)."""
    session = await _sessions(request).find(who.session.id)
    if session is None:
        return False
    version = await account_version(request, session.editor)
    return version is not None and hmac.compare_digest(version, session.version)
