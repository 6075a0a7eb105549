"""Sign-in attempts, counted in Redis so the limits hold across every livefeed process.

Each attempt is counted before the password is checked, three ways:

- per (account name, client address): past ``LOGIN_FAILURES_PER_NAME`` within the window,
  that address waits for the window to end before trying that name again;
- per client address: past ``LOGIN_FAILURES_PER_ADDRESS``, the address waits (guessing
  many names from one place);
- per account name alone (whether the account exists or not, so it tells nothing): past
  ``LOGIN_FAILURES_PER_NAME``, every attempt at that name is only slowed down (a growing
  delay, capped). It never locks the name: six wrong passwords for ``operator`` from
  anywhere must not lock the real operator out from everywhere.

Counting first, rather than counting failures afterwards, means a burst of parallel guesses
cannot slip past the limit while their passwords are being checked. A successful sign-in
forgets the name's counts and takes its attempt back for the address.
"""

from __future__ import annotations

import hashlib
import math

from livefeed import limits
from livefeed.errors import RateLimited
from livefeed.storage.connect import Client
from livefeed.storage.keys import Keys
from livefeed.storage.ratelimit import RateLimiter


def _name_key(name: str, address: str = "") -> str:
    # A digest: the name field is free text (people type passwords into it).
    text = f"{name}\0{address}" if address else name
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class LoginGuard:
    """Counts sign-in attempts per account name and per client address."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._counter = RateLimiter(redis, keys)

    def _pair(self, name: str, address: str) -> str:
        return self._keys.rate_limit("login-pair", _name_key(name, address))

    def _name(self, name: str) -> str:
        return self._keys.rate_limit("login-name", _name_key(name))

    def _address(self, address: str) -> str:
        return self._keys.rate_limit("login-address", address)

    async def attempt(self, name: str, address: str) -> float:
        """Count one attempt: the seconds to wait before checking the password (the name-wide
        back-off), or RateLimited (with the seconds to wait) past a per-address limit."""
        wait = 0
        for key, allowed in (
            (self._pair(name, address), limits.LOGIN_FAILURES_PER_NAME),
            (self._address(address), limits.LOGIN_FAILURES_PER_ADDRESS),
        ):
            count, left = await self._counter.count(key, limits.LOGIN_WINDOW)
            if count > allowed:
                wait = max(wait, left)
        if wait:
            minutes = math.ceil(wait / 60)
            raise RateLimited(
                f"too many sign-in attempts: try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}",
                retry_after=wait,
            )
        count, _ = await self._counter.count(self._name(name), limits.LOGIN_WINDOW)
        excess = count - limits.LOGIN_FAILURES_PER_NAME
        return (
            min(limits.LOGIN_BACKOFF_MAX, excess * limits.LOGIN_BACKOFF_STEP) if excess > 0 else 0.0
        )

    async def succeeded(self, name: str, address: str) -> None:
        """A correct password: forget the name's attempts, take this one back for the address."""
        address_key = self._address(address)
        await self._redis.delete(self._pair(name, address))
        await self._redis.delete(self._name(name))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.decr(address_key)
            pipe.expire(address_key, limits.LOGIN_WINDOW, nx=True)  # if it expired meanwhile
            await pipe.execute()
