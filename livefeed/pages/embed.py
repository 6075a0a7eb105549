"""``/embed/read-next``: the live "Read next" column as a page other sites may frame.

Only the origins in ``LIVEFEED_EMBED_ORIGINS`` may frame it (``frame-ancestors``); with
none listed it is ``'none'``, like every other page. Links open in the top window, so a
reader who clicks leaves the partner's page for the article rather than squeezing it into
the frame. The sibling for pages that want the column in their own DOM is
``/static/embed.js`` (served with CORS to ``LIVEFEED_ALLOWED_ORIGINS``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livefeed import events
from livefeed.pages.reader import CONTENT_SECURITY_POLICY, render
from livefeed.services import services_of

EMBED_BRIEFS = 10


def frame_ancestors(origins: tuple[str, ...]) -> str:
    """The page policy with ``frame-ancestors`` naming ``origins`` (or ``'none'``)."""
    allowed = " ".join(origins) if origins else "'none'"
    return CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'", f"frame-ancestors {allowed}")


async def read_next(request: Request) -> Response:
    """The latest briefs, live, for an ``<iframe>``."""
    services = services_of(request)
    listing = await services.content.list_briefs(limit=EMBED_BRIEFS)
    positions = {events.BRIEFS: listing.last_event_id}
    live = {
        "page": "embed",
        "positions": positions,
        "cursor": events.encode_cursor(positions),
        "briefsLimit": EMBED_BRIEFS,
    }
    services.stats.embeds["iframe"] += 1
    policy = frame_ancestors(services.settings.embed_origins)
    return render(
        "embed/read_next.html",
        headers={"Content-Security-Policy": policy},
        briefs=listing.items,
        briefs_limit=EMBED_BRIEFS,
        live=live,
    )


def routes() -> list[BaseRoute]:
    return [Route("/embed/read-next", read_next, methods=["GET"], name="embed_read_next")]
