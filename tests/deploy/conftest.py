"""The deploy tier: one stack (nginx + 3 livefeed + Redis) for the whole tier, and Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.conftest import browser, open_page  # noqa: F401
from tests.deploy.stack import Stack
from tests.helpers import started


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with started(Stack()) as stack:
        yield stack
