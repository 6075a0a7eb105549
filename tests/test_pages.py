"""Server-rendered pages as a reader without JavaScript sees them."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer
from tests.helpers import auth


async def test_an_article_with_closed_comments_says_so_instead_of_offering_the_form(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    body = {"title": "Closed", "summary": "s", "body": ["p"]}
    assert (
        await api.put("/api/articles/closed", json=body, headers=auth(live_server.token))
    ).status_code == 201
    open_page = (await api.get("/articles/closed")).text
    assert 'data-live="comment-form"' in open_page and "Leave the first comment" in open_page
    await live_server.app.state.content.close_comments("closed", True)
    closed_page = (await api.get("/articles/closed")).text
    assert "Comments are closed." in closed_page
    assert 'data-live="comment-form"' not in closed_page
    assert "Leave the first comment" not in closed_page
