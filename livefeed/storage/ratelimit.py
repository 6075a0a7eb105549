"""Rate limits counted in Redis, so a limit holds across every livefeed process."""

from __future__ import annotations

import math

from redis.asyncio import Redis

from livefeed.errors import RateLimited
from livefeed.settings import Rate
from livefeed.storage.keys import Keys


class RateLimiter:
    """Fixed-window counters: at most ``rate.count`` hits per ``rate.window`` per client."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def hit(self, name: str, client: str, rate: Rate) -> None:
        """Count one hit; raise RateLimited (with the seconds to wait) past the limit."""
        key = self._keys.rate_limit(name, client)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, rate.window, nx=True)
            pipe.pttl(key)
            count, _, ttl_ms = await pipe.execute()
        if count > rate.count:
            retry_after = max(1, math.ceil(ttl_ms / 1000)) if ttl_ms > 0 else rate.window
            raise RateLimited(
                f"too many {name}s from this address: at most {rate}, try again in {retry_after} s",
                retry_after=retry_after,
            )
