"""``/editor/live``: the editor pages' own live stream (Server-Sent Events).

It carries what no reader topic does: every new comment of every article (for the
moderation view), credits as editors act, and every ``PRESENCE_INTERVAL`` seconds the
readers connected across all processes. Desk notices arrive on a plain pub/sub channel
that every process's hub listens to; nothing here is replayed, so a stream that falls
behind is ended, and the page refetches its lists when it connects again (each
``readers`` record names the newest comment, so a page also notices one it missed).
The stream ends when the editor's session does: at once when they sign out, their password
changes or their account is removed (a notice says so), else at the next check.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from livefeed import errors, limits
from livefeed.editor.session import SignedIn, is_still_signed_in, signed_in
from livefeed.errors import Unauthorized
from livefeed.services import services_of
from livefeed.storage.sessions import session_tag
from livefeed.web.requests import is_allowed_origin

HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


def record(event: str, data: Any) -> bytes:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {body}\n\n".encode()


async def snapshot(request: Request) -> dict[str, Any]:
    """What a page refreshes now and then: readers now, and the newest comment's name."""
    services = services_of(request)
    readers, latest = await asyncio.gather(services.presence.read(), services.desk.latest_comment())
    return {"readers": readers.to_json(), "latest_comment": latest}


def _is_for(data: dict[str, str], who: SignedIn) -> bool:
    """Whether a sign-out notice (of one session, or of every session of an editor) is ``who``'s."""
    return data.get("editor") == who.editor or data.get("session") == session_tag(who.session.id)


async def _records(request: Request, who: SignedIn) -> AsyncIterator[bytes]:
    services = services_of(request)
    feed, readers = services.desk_feed, services.readers
    loop = asyncio.get_running_loop()
    with feed.watch() as watcher:
        yield b"retry: 2000\n\n" + record("hello", await snapshot(request))
        next_tick = loop.time() + limits.PRESENCE_INTERVAL
        leaving = asyncio.ensure_future(readers.going_away.wait())
        overflowed = asyncio.ensure_future(watcher.overflowed.wait())
        try:
            while True:
                getting = asyncio.ensure_future(watcher.queue.get())
                timeout = max(0.0, next_tick - loop.time())
                await asyncio.wait(
                    {getting, leaving, overflowed},
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if leaving.done() or overflowed.done():
                    getting.cancel()
                    return  # the page reconnects (elsewhere) and refetches
                if getting.done():
                    notice = json.loads(getting.result())
                    if notice["type"] == "signed-out":
                        if _is_for(notice["data"], who):
                            yield record("signed-out", {})
                            return
                        continue
                    yield record(str(notice["type"]), notice["data"])
                    continue
                getting.cancel()
                if not await is_still_signed_in(request, who):
                    yield record("signed-out", {})
                    return
                yield record("readers", await snapshot(request))
                next_tick = loop.time() + limits.PRESENCE_INTERVAL
        finally:
            leaving.cancel()
            overflowed.cancel()


async def live_stream(request: Request) -> Response:
    if not is_allowed_origin(request, services_of(request).settings.allowed_origins):
        refused = errors.Forbidden(
            "this origin may not open the desk", code=errors.FORBIDDEN_ORIGIN
        )
        return JSONResponse(refused.to_json(), status_code=403)
    who = await signed_in(request)
    if who is None:
        error = Unauthorized("sign in at /editor/login first")
        return JSONResponse(error.to_json(), status_code=401)
    if request.method == "HEAD":
        return Response(media_type="text/event-stream", headers=HEADERS)
    return StreamingResponse(
        _records(request, who), media_type="text/event-stream", headers=HEADERS
    )


routes = [Route("/editor/live", live_stream, methods=["GET"])]
