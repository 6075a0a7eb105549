"""The editors' desk under ``/editor``: sign-in, briefs, articles, comment moderation."""

from __future__ import annotations

from starlette.routing import BaseRoute

from livefeed.editor import articles, briefs, comments, live, login, queue


def routes() -> list[BaseRoute]:
    """Every route of the editor pages, for ``create_app`` to mount."""
    return [
        *login.routes,
        *briefs.routes,
        *articles.routes,
        *comments.routes,
        *queue.routes,
        *live.routes,
    ]
