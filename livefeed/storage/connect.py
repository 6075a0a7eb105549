"""Redis clients from a URL: standalone (``redis://``, ``rediss://``, ``unix://``) or a
Redis/Valkey Cluster (``redis+cluster://host:port``, ``rediss+cluster://``; any one node).

Command clients bound every call by a timeout; subscriber clients have none.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoPermissionError,
    RedisError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from livefeed import limits

# Both client kinds offer the commands livefeed uses; code above storage/ sees this.
Client = Any


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in {"redis+cluster", "rediss+cluster"}


def _plain_url(url: str) -> str:
    """The URL with ``+cluster`` dropped from its scheme."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.replace("+cluster", "")))


def node_url(url: str, host: str, port: int) -> str:
    """A standalone URL for one node of the cluster ``url`` names (same auth and TLS)."""
    parts = urlsplit(_plain_url(url))
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, *, decode: bool = True, blocking: float = 0.0) -> Client:
    """A pooled client for commands; a call that gets no answer in time raises TimeoutError.

    ``blocking``: the longest server-side block a command of this client asks for (e.g.
    XREADGROUP BLOCK), added to the timeout. A connection that was closed under us (Redis
    restarted) is retried once at once; a timeout is not, to keep answers within bounds.
    """
    options: dict[str, Any] = {
        "decode_responses": decode,
        "socket_timeout": limits.REDIS_CALL_TIMEOUT + blocking,
        "socket_connect_timeout": limits.REDIS_CONNECT_TIMEOUT,
        "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
    }
    if is_cluster_url(url):
        return RedisCluster.from_url(_plain_url(url), **options)
    # A burst of requests waits for a free connection (within the call timeout) rather than
    # failing at redis-py's default cap of 100 while Redis is perfectly fine.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=limits.REDIS_POOL_MAX,
        timeout=limits.REDIS_CALL_TIMEOUT,
        health_check_interval=30,
        **options,
    )
    return Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


def connect_pubsub(url: str) -> Redis:
    """A client for one subscriber connection (to a standalone server or one cluster node).

    No read timeout: a quiet channel is not a dead one. No silent retries either: when the
    connection drops, its owner must know, because it has to replay what it missed.
    """
    return Redis.from_url(
        url,
        decode_responses=False,  # a foreign message that is not UTF-8 must not break it
        socket_timeout=None,
        socket_connect_timeout=limits.REDIS_CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


async def is_reachable(redis: Client) -> bool:
    """True if Redis answers a PING in time."""
    try:
        return bool(await asyncio.wait_for(redis.ping(), limits.REDIS_CALL_TIMEOUT))
    except (RedisError, OSError, TimeoutError):
        return False


async def problem(redis: Client) -> str | None:
    """Why ``redis`` cannot be used right now, in words an operator can act on, or None."""
    try:
        await asyncio.wait_for(redis.ping(), limits.REDIS_CALL_TIMEOUT)
    except AuthenticationError:
        return "authentication failed: check the user name and password in the Redis URL"
    except NoPermissionError as exc:
        return f"the Redis user lacks a permission livefeed needs: {exc}"
    except (TimeoutError, RedisTimeoutError):
        return f"no answer within {limits.REDIS_CALL_TIMEOUT} s"
    except (RedisError, OSError) as exc:
        return f"cannot connect: {exc}"
    try:
        info = await asyncio.wait_for(redis.info("server"), limits.REDIS_CALL_TIMEOUT)
    except NoPermissionError:
        return None  # a user without INFO: the commands themselves will tell
    except (RedisError, OSError, TimeoutError) as exc:
        return f"cannot read the server version (INFO server): {exc}"
    return version_problem(_versions(info))


def _versions(info: dict[str, Any]) -> list[str]:
    """``redis_version`` of a server's INFO, or of every node's (a cluster answers per node)."""
    if "redis_version" in info:
        return [str(info["redis_version"])]
    return [str(v["redis_version"]) for v in info.values() if isinstance(v, dict)]


def version_problem(versions: list[str]) -> str | None:
    """Why servers of these ``redis_version`` values are too old for livefeed, or None."""
    floor = ".".join(map(str, limits.REDIS_MIN_VERSION))
    for version in versions:
        try:
            found = tuple(int(part) for part in version.split(".")[:2])
        except ValueError:
            return f"cannot tell the server version from {version!r}; livefeed needs >= {floor}"
        if found < limits.REDIS_MIN_VERSION:
            return (
                f"Redis {version} is too old: livefeed needs Redis (or Valkey) >= {floor} "
                "(EXPIRE ... NX, sharded pub/sub)"
            )
    return None
