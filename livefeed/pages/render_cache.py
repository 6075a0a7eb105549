"""Rendered article pages kept in the process, and the HTTP caching that goes with them.

Under a spike every reader asks for the same few pages. A page is rendered once per
``ArticleVersion`` (the positions of the topics it shows and its comment mode, read in one
Redis round trip) and its bytes are served while that version stands; any publish,
correction, retraction, hidden comment or mode change moves the version, and the next
request renders again. The ETag is the version's hash, so a reader (or a CDN) holding the
page gets ``304`` for the cost of that one round trip.

A page served late is safe: it embeds the positions it was rendered at, and the live
client subscribes from them, so it receives everything published since (retractions and
hidden comments included) or, when that is no longer in the history, refetches the lists.
That is why a shared cache may hold a page for a few seconds (``s-maxage``) while
browsers revalidate every time (``max-age=0``).

Only pages that are the same for every reader are kept. What is one reader's own — the
"your comment is held" notice after a form post — is rendered for that request alone and
sent ``private, no-store``; a form post's answer (its error, what was typed) is never a
GET and never kept. Nothing on a reader page depends on a cookie.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from livefeed import limits
from livefeed.web import paths

SHARED = (
    f"public, max-age=0, s-maxage={limits.PAGE_SHARED_MAX_AGE}, "
    f"stale-while-revalidate={limits.PAGE_STALE_WHILE_REVALIDATE}"
)
PRIVATE = "private, no-store"


@functools.lru_cache(maxsize=limits.PAGE_CACHE_ENTRIES)  # asked on every view: hashed once
def etag(key: Hashable, version: Hashable) -> str:
    """A weak ETag: the page at one version is the same news, but not always the same
    bytes (times shown relative to now, counts of other articles refreshed on age)."""
    text = f"{paths.release()} {key!r} {version!r}"
    return f'W/"{hashlib.sha256(text.encode()).hexdigest()[:24]}"'


def is_fresh(if_none_match: str | None, tag: str) -> bool:
    """``If-None-Match`` names ``tag``, compared weakly (RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    opaque = tag.removeprefix("W/")
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return opaque in tags or "*" in tags


@dataclass(frozen=True, slots=True)
class CachedPage:
    version: Hashable
    body: bytes
    rendered_at: float


class RenderCache:
    """Rendered pages by what they show, each served while its version stands.

    Bounded in entries and bytes (least recently used go first) and in age. Concurrent
    requests for a page that is not rendered yet wait for one render instead of each
    doing their own, so an event during a spike costs one render, not one per reader.
    """

    def __init__(
        self,
        entries: int = limits.PAGE_CACHE_ENTRIES,
        size: int = limits.PAGE_CACHE_BYTES,
        max_age: float = limits.PAGE_CACHE_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = entries
        self._size = size
        self._max_age = max_age
        self._clock = clock
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._bytes = 0
        self._rendering: dict[tuple[Hashable, Hashable], asyncio.Future[bytes | None]] = {}

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def size(self) -> int:
        """Bytes of HTML kept."""
        return self._bytes

    async def page(
        self, key: Hashable, version: Hashable, render: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The page ``key`` at ``version``: kept bytes, another request's render, or ours."""
        found = self._pages.get(key)
        if found is not None and found.version == version and self._is_young(found):
            self._pages.move_to_end(key)
            return found.body
        flight = (key, version)
        waiting = self._rendering.get(flight)
        if waiting is not None:
            body = await asyncio.shield(waiting)
            if body is not None:
                return body
            return await render()  # that render failed: meet the error ourselves
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._rendering[flight] = future
        try:
            body = await render()
            self._put(key, CachedPage(version, body, self._clock()))
            future.set_result(body)
            return body
        finally:
            if not future.done():
                future.set_result(None)  # errors and cancellations stay with this request
            del self._rendering[flight]

    def _is_young(self, page: CachedPage) -> bool:
        return self._clock() - page.rendered_at < self._max_age

    def _put(self, key: Hashable, page: CachedPage) -> None:
        if len(page.body) > self._size:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._pages[key] = page
        self._bytes += len(page.body)
        while len(self._pages) > self._entries or self._bytes > self._size:
            _, evicted = self._pages.popitem(last=False)
            self._bytes -= len(evicted.body)
