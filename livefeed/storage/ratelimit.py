"""Rate limits counted in Redis, so a limit holds across every livefeed process."""

from __future__ import annotations

import math

from livefeed.errors import RateLimited
from livefeed.settings import Rate
from livefeed.storage.connect import Client
from livefeed.storage.keys import Keys


class RateLimiter:
    """Fixed-window counters: at most ``rate.count`` hits per ``rate.window`` per client."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def count(self, key: str, window: int) -> tuple[int, int]:
        """One more hit on ``key``: the hits in its window so far and the seconds it has left.

        The window starts at the first hit and never moves (a fixed window)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
            pipe.pttl(key)
            count, _, ttl_ms = await pipe.execute()
        return int(count), math.ceil(ttl_ms / 1000) if ttl_ms > 0 else window

    async def hit(self, name: str, client: str, rate: Rate) -> None:
        """Count one hit; raise RateLimited (with the seconds to wait) past the limit."""
        count, retry_after = await self.count(self._keys.rate_limit(name, client), rate.window)
        if count > rate.count:
            raise RateLimited(
                f"too many {name}s from this address: at most {rate}, try again in {retry_after} s",
                retry_after=retry_after,
            )
