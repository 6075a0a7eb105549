"""The Jinja2 environment of every HTML page (reader pages and the editors' desk).

Autoescaping is on for every template whatever its name (Starlette's own Jinja2 setup
escapes only ``.html``/``.htm``/``.xml`` names), undefined names fail loudly, and times
are shown in UTC by the server and rewritten to the reader's local time by the page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2

from livefeed import limits
from livefeed.web import paths


def _moment(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)


def clock(iso: str) -> str:
    """``14:11 UTC`` for the last 24 hours, ``9 May`` before; the client shows local time."""
    moment = _moment(iso)
    if abs(datetime.now(UTC) - moment) < timedelta(days=1):
        return f"{moment:%H:%M} UTC"
    return f"{moment.day} {moment:%b}"


def long_datetime(iso: str) -> str:
    moment = _moment(iso)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def environment(filters: dict[str, Callable[..., Any]] | None = None) -> jinja2.Environment:
    """A page environment, with ``filters`` added to the shared ones."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths.TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = clock
    env.filters["datetime"] = long_datetime
    env.filters.update(filters or {})
    env.globals["asset_url"] = paths.asset_url
    env.globals["import_map"] = paths.import_map
    env.globals["limits"] = limits
    return env
