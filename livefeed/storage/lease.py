"""Leases: one process of the cluster at a time does a job (consume the ingest stream,
dispatch pushes); the others stand by and take over when its lease expires or is released.

Contract:

- The lease is a key holding the holder's name with an expiry. ``take`` succeeds when
  nobody holds it or this process already does (and extends it); ``renew`` only while this
  process still holds it; ``release`` deletes it only if this process holds it, so a
  standby takes over at once. Each is one script, so two processes never both succeed.
- ``held`` is what this process last learned: a failed renewal, a failure of the job or a
  release clears it.
- ``keep_holding`` runs a holder's job for ever: Redis gone or a bug is logged, counts as
  losing the lease, and the job starts again after a back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from livefeed.storage.connect import Client

_TAKE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return 1 end
return 0
"""
_RENEW = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
"""


class Lease:
    """This process's claim to one cluster-wide job, held under ``holder``'s name."""

    def __init__(self, redis: Client, key: str, holder: str, ttl: float) -> None:
        self.key = key
        self.holder = holder
        self.held = False
        self._ttl_ms = int(ttl * 1000)
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def take(self) -> bool:
        """Become (or stay) the holder, if nobody else is."""
        self.held = bool(await self._take(keys=[self.key], args=[self.holder, self._ttl_ms]))
        return self.held

    async def renew(self) -> bool:
        """Keep the lease; False if it was lost (expired and taken)."""
        self.held = bool(await self._renew(keys=[self.key], args=[self.holder, self._ttl_ms]))
        return self.held

    async def wait_to_take(self, poll: float) -> None:
        """Return once this process holds the lease, asking every ``poll`` seconds."""
        # The lease lives in Redis: there is nothing to wait on but the clock.
        while not await self.take():  # noqa: ASYNC110
            await asyncio.sleep(poll)

    async def release(self) -> None:
        """Give the lease up, if held, so a standby takes over at once (else it expires)."""
        if self.held:
            with contextlib.suppress(RedisError, OSError):
                await self._release(keys=[self.key], args=[self.holder])
        self.held = False


@dataclass(slots=True)
class Backoff:
    """Waits that double from ``shortest`` up to ``longest``; ``reset`` once things work."""

    shortest: float
    longest: float
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.shortest

    def next(self) -> float:
        wait, self._next = self._next, min(self._next * 2, self.longest)
        return wait

    def reset(self) -> None:
        self._next = self.shortest


async def keep_holding(
    lease: Lease,
    job: Callable[[], Awaitable[None]],
    backoff: Backoff,
    what: str,
    logger: logging.Logger,
) -> None:
    """Run ``job`` (which takes ``lease`` and works while it holds it) again and again.

    Redis unavailable waits ``backoff.next()``; a bug is logged with its traceback and waits
    the longest back-off, and never stops the job for good. Either way the lease counts as
    lost until the job takes it again."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            lease.held = False
            logger.warning("%s: Redis unavailable (%s); retrying", what, exc)
            await asyncio.sleep(backoff.next())
        except Exception:
            lease.held = False
            logger.exception("%s: unexpected error; retrying", what)
            await asyncio.sleep(backoff.longest)
