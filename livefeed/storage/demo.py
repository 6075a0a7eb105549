"""The demo content: the article of ``page.txt`` and its five "Read next" briefs.

Loading is idempotent: the article is created only if missing (an editor's changes are
kept) and the briefs carry fixed ids, which the store never publishes twice (a retracted
demo brief stays retracted).
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from importlib import resources
from typing import Any

from livefeed import models
from livefeed.models import Brief
from livefeed.storage.content import Content


def _demo_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        resources.files("livefeed").joinpath("data/demo.json").read_text(encoding="utf-8")
    )
    return data


def brief_times(clock: list[str], now: datetime) -> list[datetime]:
    """The briefs' ``HH:MM`` times on the latest day on which none is in the future."""
    local_now = now.astimezone()
    times = [time.fromisoformat(t) for t in clock]
    day = local_now.date()
    if datetime.combine(day, max(times), local_now.tzinfo) > local_now:
        day -= timedelta(days=1)
    return [datetime.combine(day, t, local_now.tzinfo) for t in times]


async def load_demo(content: Content, now: datetime | None = None) -> int:
    """Load the demo article and briefs if absent; the number of briefs published now."""
    data = _demo_data()
    article = data["article"]
    if await content.get_article(article["slug"]) is None:
        await content.put_article(
            article["slug"],
            {k: article[k] for k in ("title", "summary", "body")},
        )
    entries = data["briefs"]
    moments = brief_times([b["time"] for b in entries], now or datetime.now().astimezone())
    published = 0
    # Oldest first, so the event log runs in the same order as the times.
    for entry, moment in sorted(zip(entries, moments, strict=True), key=lambda p: p[1]):
        stamp = models.format_time(moment)
        brief = Brief(
            id=entry["id"],
            text=entry["text"],
            breaking=False,
            article=entry.get("article"),
            published_at=stamp,
            updated_at=stamp,
        )
        if await content.publish_brief(brief) is not None:
            published += 1
    return published
