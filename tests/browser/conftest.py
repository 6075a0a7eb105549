"""Browser fixtures: Debian's Chromium driven by Playwright's async API.

The async API runs in the test's own event loop, next to the ``live_server`` it talks to
(the sync API would block that loop). A browser per test keeps loop ownership simple.
Without Chromium these tests skip, except under CI, where they fail: a green CI must mean
the pages were really tested.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.editor_support import serve_second_server  # noqa: F401 (fixture second_server)
from tests.helpers import FACTOR, TIMEOUT, auth

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Page,
        ViewportSize,
        async_playwright,
        expect,
    )
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every wait on the page goes through Playwright's expect/wait_for with this timeout.
BROWSER_TIMEOUT_MS = int(10_000 * FACTOR)

# Records what the page itself reports, before any page script runs (init scripts are
# exempt from the page's CSP, which is what we are checking).
_WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def chromium_path() -> str | None:
    for candidate in (os.environ.get("LIVEFEED_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _require_browser() -> str:
    path = chromium_path()
    reason = None
    if async_playwright is None:
        reason = "Playwright for Python is not installed (pip install -e '.[test]')"
    elif path is None:
        reason = "Chromium not found at /usr/bin/chromium (apt-get install -y chromium)"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    assert path is not None
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = _require_browser()
    expect.set_options(timeout=BROWSER_TIMEOUT_MS)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Watched:
    """A page plus everything it logged that a test should not ignore."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    js: bool = True

    async def csp_violations(self) -> list[str]:
        found: list[str] = await self.page.evaluate("window.__cspViolations || []")
        csp_logged = [m for m in self.console_errors if "Content Security Policy" in m]
        return found + csp_logged


Opener = Callable[..., Awaitable[Watched]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[Opener]:
    """``await open_page(url, js=True, init_script=None, viewport=None)``: a watched page.

    At teardown every page must be free of CSP violations, uncaught errors and dialogs
    (an ``alert`` would mean a comment ran as code).
    """
    contexts: list[BrowserContext] = []
    watched: list[Watched] = []

    async def open_(
        url: str,
        *,
        js: bool = True,
        init_script: str | None = None,
        viewport: ViewportSize | None = None,
        before_goto: Callable[[Page], Awaitable[None]] | None = None,
    ) -> Watched:
        context = await browser.new_context(
            java_script_enabled=js, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        contexts.append(context)
        await context.add_init_script(_WATCH_CSP)
        if init_script:
            await context.add_init_script(init_script)
        page = await context.new_page()
        item = Watched(page, js=js)
        page.on(
            "console",
            lambda msg: item.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda error: item.page_errors.append(str(error)))

        async def on_dialog(dialog: Any) -> None:
            item.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        watched.append(item)
        if before_goto is not None:
            await before_goto(page)
        await page.goto(url)
        return item

    try:
        yield open_
        for item in watched:
            if item.js and not item.page.is_closed():
                violations = await item.csp_violations()
                assert violations == [], f"CSP violations: {violations}"
            assert item.page_errors == [], f"uncaught page errors: {item.page_errors}"
            assert item.dialogs == [], f"the page opened dialogs: {item.dialogs}"
            csp = [m for m in item.console_errors if "Content Security Policy" in m]
            assert csp == [], f"CSP violations: {csp}"
    finally:
        for context in contexts:
            await context.close()


BRIEFS = '[data-live="briefs"] [data-brief-id]'
COMMENTS = '[data-live="comments"] [data-comment-id]'
COMMENT_FORM = 'form[data-live="comment-form"]'


async def brief_ids(page: Page) -> list[str]:
    """The ids of the briefs on the page, top to bottom."""
    ids: list[str] = await page.eval_on_selector_all(
        BRIEFS, "items => items.map(item => item.dataset.briefId)"
    )
    return ids


# After a server restart the client may be deep in its backoff (capped at 30 s; a few
# failed cycles make it several seconds): wait for that, not for the default timeout.
RECONNECT_TIMEOUT_MS = int(40_000 * FACTOR)


async def wait_live(page: Page, timeout_ms: float = BROWSER_TIMEOUT_MS) -> None:
    """Wait until the page's live connection is up and its topics are subscribed."""
    status = page.locator('[data-live="status"]')
    await expect(status).to_have_attribute("data-state", "connected", timeout=timeout_ms)


async def post_form(page: Page, author: str, text: str) -> None:
    """Post a comment through the article page's form, as a reader types it."""
    form = page.locator(COMMENT_FORM)
    await form.get_by_label("Your name").fill(author)
    await form.get_by_label("Your comment").fill(text)
    await form.get_by_role("button", name="Post comment").click()


Visitor = Callable[..., Awaitable[Page]]


@pytest.fixture
def visit(live_server: Any, open_page: Opener) -> Visitor:
    """``await visit(path, **options)``: a reader's page of ``live_server`` (``options`` as
    for ``open_page``), returned once it is live; without JavaScript, once it has loaded."""

    async def visit_(path: str, **options: Any) -> Page:
        page = (await open_page(f"{live_server.url}{path}", **options)).page
        if options.get("js", True):
            await wait_live(page)
        return page

    return visit_


@dataclass
class Newsroom:
    """The editor side of a test, talking to the live server over its JSON API."""

    client: httpx.AsyncClient
    token: str

    async def publish(self, text: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/briefs", json={"text": text, **fields}, headers=auth(self.token)
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def correct(self, brief_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.patch(
            f"/api/briefs/{brief_id}", json=fields, headers=auth(self.token)
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def retract(self, brief_id: str) -> None:
        response = await self.client.delete(f"/api/briefs/{brief_id}", headers=auth(self.token))
        assert response.status_code == 204, response.text

    async def put_article(self, slug: str, title: str = "Talks in Moscow", **fields: Any) -> None:
        body = {
            "title": title,
            "summary": fields.pop("summary", "Leaders met for talks."),
            "body": fields.pop("body", ["First paragraph.", "Second paragraph."]),
        }
        response = await self.client.put(
            f"/api/articles/{slug}", json=body, headers=auth(self.token)
        )
        assert response.status_code in (200, 201), response.text

    async def comment(
        self, slug: str, author: str, text: str, reply_to: str | None = None
    ) -> dict[str, Any]:
        body = {"author": author, "text": text}
        if reply_to is not None:
            body["reply_to"] = reply_to
        response = await self.client.post(f"/api/articles/{slug}/comments", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def hide(self, slug: str, comment_id: str) -> None:
        response = await self.client.delete(
            f"/api/articles/{slug}/comments/{comment_id}", headers=auth(self.token)
        )
        assert response.status_code == 204, response.text


@pytest.fixture
async def newsroom(live_server: Any) -> AsyncIterator[Newsroom]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=TIMEOUT) as client:
        yield Newsroom(client, live_server.token)
