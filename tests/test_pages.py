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
    await live_server.services.content.close_comments("closed", True)
    closed_page = (await api.get("/articles/closed")).text
    assert "Comments are closed." in closed_page
    assert 'data-live="comment-form"' not in closed_page
    assert "Leave the first comment" not in closed_page


async def test_reply_and_held_comments_work_without_javascript(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    body = {"title": "Threads", "summary": "s", "body": ["p"], "comment_mode": "open"}
    await api.put("/api/articles/threads", json=body, headers=auth(live_server.token))
    top = await api.post("/api/articles/threads/comments", json={"author": "A", "text": "Top"})
    top_id = top.json()["id"]
    page = (await api.get("/articles/threads")).text
    assert f'href="?reply_to={top_id}#comment-form"' in page
    # Following "Reply" renders the form with reply_to filled in.
    replying = (await api.get(f"/articles/threads?reply_to={top_id}")).text
    assert f'name="reply_to" value="{top_id}"' in replying and "Replying to" in replying
    form = {"author": "B", "text": "A reply without JS", "reply_to": top_id}
    posted = await api.post("/articles/threads/comments", data=form)
    assert posted.status_code == 303
    page = (await api.get("/articles/threads")).text
    thread = page[page.index(f'data-comment-id="{top_id}"') :]
    replies = thread[thread.index('data-live="replies"') : thread.index("</ol>")]
    assert "A reply without JS" in replies
    assert "2 comments" in page
    # Premoderated: the author is told, the page shows nothing to anyone.
    body["comment_mode"] = "premoderated"
    await api.put("/api/articles/threads", json=body, headers=auth(live_server.token))
    held = await api.post("/articles/threads/comments", data={"author": "C", "text": "Held"})
    assert held.status_code == 303 and held.headers["location"].endswith("?held=1#comments")
    notice = (await api.get(held.headers["location"])).text
    assert "awaiting moderation" in notice and ">Held<" not in notice
    # An unknown reply_to is a form error, not a 500.
    bad = await api.post(
        "/articles/threads/comments", data={"author": "D", "text": "x", "reply_to": "nope"}
    )
    assert bad.status_code == 422 and "reply_to" in bad.text
