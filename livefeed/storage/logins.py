"""Sign-in attempts, counted in Redis so the limits hold across every livefeed process.

Each attempt is counted before the password is checked, per account name (whether the
account exists or not, so a lockout tells nothing) and per client address; past either
limit within the window, sign-in waits for the window to end. Counting first, rather than
counting failures afterwards, means a burst of parallel guesses cannot slip past the limit
while their passwords are being checked. A successful sign-in takes its attempt back.
"""

from __future__ import annotations

import hashlib
import math

from livefeed import limits
from livefeed.errors import RateLimited
from livefeed.storage.connect import Client
from livefeed.storage.keys import Keys


def _name_key(name: str) -> str:
    # A digest: the name field is free text (people type passwords into it).
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class LoginGuard:
    """Counts sign-in attempts per account name and per client address."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def _counters(self, name: str, address: str) -> tuple[tuple[str, int], ...]:
        return (
            (self._keys.rate_limit("login-name", _name_key(name)), limits.LOGIN_FAILURES_PER_NAME),
            (self._keys.rate_limit("login-address", address), limits.LOGIN_FAILURES_PER_ADDRESS),
        )

    async def attempt(self, name: str, address: str) -> None:
        """Count one attempt; RateLimited (with the seconds to wait) past either limit."""
        wait = 0
        for key, allowed in self._counters(name, address):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, limits.LOGIN_WINDOW, nx=True)
                pipe.pttl(key)
                count, _, ttl_ms = await pipe.execute()
            if count > allowed:
                wait = max(wait, math.ceil(ttl_ms / 1000) if ttl_ms > 0 else limits.LOGIN_WINDOW)
        if wait:
            minutes = math.ceil(wait / 60)
            raise RateLimited(
                f"too many sign-in attempts: try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}",
                retry_after=wait,
            )

    async def succeeded(self, name: str, address: str) -> None:
        """A correct password: forget the name's attempts, take this one back for the address."""
        name_key, address_key = (key for key, _ in self._counters(name, address))
        await self._redis.delete(name_key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.decr(address_key)
            pipe.expire(address_key, limits.LOGIN_WINDOW, nx=True)  # if it expired meanwhile
            await pipe.execute()
