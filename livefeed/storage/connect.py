"""Redis clients from a URL: one for commands (every call bounded by a timeout), one for pub/sub."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from livefeed import limits


def connect(url: str, *, decode: bool = True, blocking: float = 0.0) -> Redis:
    """A pooled client for commands; a call that gets no answer in time raises TimeoutError.

    ``blocking``: the longest server-side block a command of this client asks for (e.g.
    XREADGROUP BLOCK), added to the timeout. A connection that was closed under us (Redis
    restarted) is retried once at once; a timeout is not, to keep answers within bounds.
    """
    return Redis.from_url(
        url,
        decode_responses=decode,
        socket_timeout=limits.REDIS_CALL_TIMEOUT + blocking,
        socket_connect_timeout=limits.REDIS_CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        health_check_interval=30,
    )


def connect_pubsub(url: str) -> Redis:
    """A client for the hub's single subscriber connection.

    No read timeout: a quiet channel is not a dead one. No silent retries either: when the
    connection drops, the hub must know, because it has to replay what it missed.
    """
    return Redis.from_url(
        url,
        decode_responses=False,  # a foreign message that is not UTF-8 must not break it
        socket_timeout=None,
        socket_connect_timeout=limits.REDIS_CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


async def is_reachable(redis: Redis) -> bool:
    """True if Redis answers a PING in time."""
    try:
        return bool(await asyncio.wait_for(redis.ping(), limits.REDIS_CALL_TIMEOUT))
    except (RedisError, OSError, TimeoutError):
        return False
