"""The security tests reuse the browser fixtures (Chromium via Playwright)."""

from tests.browser.conftest import browser, newsroom, open_page, visit  # noqa: F401
