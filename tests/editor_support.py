"""Helpers for the editor desk's tests: accounts made in the server's own store, and an
editor's browser as an httpx client that signs in like a person (cookie + CSRF token)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx
import pytest

from livefeed.settings import Settings
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT

PASSWORD = "correct horse battery staple"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_FORM_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def add_editor(server: LiveServer, name: str, password: str = PASSWORD) -> None:
    await server.services.editors.add(name, password)


async def new_token(server: LiveServer, name: str) -> str:
    token, _ = await server.services.editors.new_token(name)
    return str(token)


@pytest.fixture(name="second_server")
async def serve_second_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """``second_server``: another livefeed process on the same Redis and prefix as
    ``live_server``. Import ``serve_second_server`` into a test module to use it.

    pytest resumes the generator after a failed test too, so the server always stops.
    """
    server = LiveServer(settings)
    await server.start()
    yield server
    await server.stop()


class Site(Protocol):
    """A running livefeed: ``LiveServer`` or a ``livefeed serve`` process."""

    @property
    def url(self) -> str: ...


def form_csrf(html: str) -> str:
    found = _FORM_CSRF.search(html)
    assert found, "no csrf field in the page"
    return found[1]


class EditorBrowser:
    """An editor's browser: cookies kept, the CSRF token read from the pages."""

    def __init__(self, server: Site, **headers: str) -> None:
        self.server = server
        self.client = httpx.AsyncClient(
            base_url=server.url, timeout=TIMEOUT, headers=headers, follow_redirects=False
        )
        self.csrf = ""

    async def __aenter__(self) -> EditorBrowser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def try_login(self, name: str, password: str) -> httpx.Response:
        page = await self.client.get("/editor/login")
        assert page.status_code == 200, page.text
        return await self.client.post(
            "/editor/login",
            data={"name": name, "password": password, "csrf": form_csrf(page.text)},
        )

    async def login(self, name: str, password: str = PASSWORD) -> EditorBrowser:
        response = await self.try_login(name, password)
        assert response.status_code == 303, response.text
        desk = await self.client.get("/editor")
        assert desk.status_code == 200, desk.text
        found = _CSRF_META.search(desk.text)
        assert found
        self.csrf = found[1]
        return self

    async def post(
        self, path: str, fields: dict[str, str] | None = None, *, json: bool = True, **extra: Any
    ) -> httpx.Response:
        """A desk form post, with the CSRF token (unless ``fields`` names its own)."""
        data = {"csrf": self.csrf, **(fields or {})}
        headers = {"Accept": "application/json"} if json else {}
        headers.update(extra.pop("headers", {}))
        return await self.client.post(path, data=data, headers=headers, **extra)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)


async def signed_in(server: LiveServer, name: str = "alice") -> EditorBrowser:
    """An account ``name`` (made if missing) signed in in a fresh browser."""
    if not await server.services.editors.exists(name):
        await add_editor(server, name)
    browser = EditorBrowser(server)
    return await browser.login(name)
