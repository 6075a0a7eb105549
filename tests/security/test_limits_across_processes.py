"""Limits that must hold across processes, and escaping that must hold for every template."""

from __future__ import annotations

from pathlib import Path

import httpx

from livefeed.settings import Rate, Settings
from livefeed.web import paths
from livefeed.web.templating import environment
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth


async def test_the_comment_rate_limit_holds_across_two_processes(settings: Settings) -> None:
    limited = settings.with_(comment_rate=Rate(3, 60))
    first, second = LiveServer(limited), LiveServer(limited)
    await first.start()
    await second.start()
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=TIMEOUT) as one,
            httpx.AsyncClient(base_url=second.url, timeout=TIMEOUT) as two,
        ):
            body = {"title": "t", "summary": "s", "body": ["p"]}
            await one.put("/api/articles/rated", json=body, headers=auth(first.token))
            comment = {"author": "Spammer", "text": "again"}
            answers = []
            for client in (one, two, one, two, one):
                response = await client.post("/api/articles/rated/comments", json=comment)
                answers.append(response.status_code)
            assert answers == [201, 201, 201, 429, 429]
            refused = await two.post("/api/articles/rated/comments", json=comment)
            assert int(refused.headers["retry-after"]) >= 1
            listed = (await one.get("/api/articles/rated/comments")).json()["items"]
            assert len(listed) == 3
    finally:
        await first.stop()
        await second.stop()


def test_every_template_is_autoescaped() -> None:
    env = environment()
    names = sorted(
        str(p.relative_to(paths.TEMPLATES_DIR)) for p in Path(paths.TEMPLATES_DIR).rglob("*.html")
    )
    assert names, "templates were found"
    for name in [*names, "any-name.txt", "partial.j2"]:
        assert env.autoescape is True or env.autoescape(name), name
    rendered = env.from_string("{{ x }}").render(x="<script>alert(1)</script>")
    assert rendered == "&lt;script&gt;alert(1)&lt;/script&gt;"
