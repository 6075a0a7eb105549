"""Redis clients from a URL: standalone (``redis://``, ``rediss://``, ``unix://``), a
Redis/Valkey Cluster (``redis+cluster://host:port``, ``rediss+cluster://``; any one node) or
a primary watched by Sentinel
(``redis+sentinel://[user:pass@]host:port[,host:port...]/<master>[?db=N]``,
``rediss+sentinel://``).

Command clients bound every call by a timeout; subscriber clients have none. A Sentinel
client asks the sentinels where the primary is whenever it opens a connection, and while in
use at least every ``limits.SENTINEL_CHECK_INTERVAL``, so after a failover its next
connection goes to the promoted replica. A connection still open to the old primary fails
(it died, or it answers READONLY, which redis-py turns into a connection error) and is
replaced; one to an old primary that is still up and still a primary (failed over while
alive, not yet demoted by the sentinels) is closed once the client sees the primary moved.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
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


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme in {"redis+sentinel", "rediss+sentinel"}


def deployment(url: str) -> str:
    """``standalone``, ``sentinel`` or ``cluster``: how the Redis of ``url`` is run."""
    if is_cluster_url(url):
        return "cluster"
    return "sentinel" if is_sentinel_url(url) else "standalone"


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """Where the sentinels are, which primary they watch, and how to talk to it."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    username: str | None
    password: str | None
    db: int
    tls: bool
    # Sentinels with ``requirepass`` of their own take it from ``?sentinel_password=``.
    sentinel_password: str | None


def sentinel_target(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL; ValueError if it is malformed."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    credentials, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
    sentinels = []
    for host_port in hosts.split(","):
        host, colon, port = host_port.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"a sentinel address must be host:port, not {host_port!r}")
        sentinels.append((host.strip("[]"), int(port)))
    service = unquote(path.strip("/"))
    if not service:
        raise ValueError("a Sentinel URL names its primary: redis+sentinel://host:port/<name>")
    options = {name: values[-1] for name, values in parse_qs(query).items()}
    db = options.get("db", "0")
    if not db.isdigit():
        raise ValueError(f"db must be a number, not {db!r}")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        service=service,
        username=username,
        password=password,
        db=int(db),
        tls=scheme == "rediss+sentinel",
        sentinel_password=options.get("sentinel_password"),
    )


class _FollowingPool(SentinelConnectionPool, BlockingConnectionPool):
    """Connections to whichever server the sentinels call the primary, counting switches.

    Blocking, like the standalone pool: a burst waits for a free connection (within the call
    timeout) instead of failing at the cap while Redis is fine.
    """

    failovers = 0
    _checked = float("-inf")  # loop time of the last look-up
    _check: asyncio.Future[None] | None = None

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        # redis-py asks the sentinels only when it opens a connection: one to a former
        # primary that is still up (failed over alive; the sentinels demote it seconds
        # later) would stay open and keep taking our commands. Ask now and then, off the
        # command's path.
        now = asyncio.get_running_loop().time()
        idle = self._check is None or self._check.done()
        if idle and now - self._checked >= limits.SENTINEL_CHECK_INTERVAL:
            self._checked = now
            self._check = asyncio.ensure_future(self._follow())
        return await super().get_connection(command_name, *keys, **options)  # type: ignore[no-untyped-call]

    async def _follow(self) -> None:
        # Unreachable sentinels: keep the connections we have, the primary may be fine.
        with contextlib.suppress(RedisError, OSError):
            await self.get_master_address()

    async def get_master_address(self) -> Any:
        before = self.master_address
        address = await super().get_master_address()  # type: ignore[no-untyped-call]
        if before is not None and address != before:
            self.failovers += 1
        return address

    async def release(self, connection: Any) -> None:
        # redis-py's asyncio pool keeps a connection that was busy when the primary moved,
        # still open to the former one (which may be up and take writes until the sentinels
        # demote it): close it, so it reconnects to the primary of now when next used.
        known = self.master_address is not None and connection.is_connected
        if known and (connection.host, connection.port) != self.master_address:
            await connection.disconnect()
        await super().release(connection)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # the owner closes the pool: close the sentinel clients too
            if self._check is not None:
                self._check.cancel()
            for sentinel in self.sentinel_manager.sentinels:
                with contextlib.suppress(Exception):
                    await sentinel.aclose()


def _sentinel_client(url: str, options: dict[str, Any]) -> Redis:
    target = sentinel_target(url)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": limits.REDIS_CALL_TIMEOUT,
        "socket_connect_timeout": limits.REDIS_CONNECT_TIMEOUT,
        "ssl": target.tls,
    }
    if target.sentinel_password is not None:
        sentinel_options["password"] = target.sentinel_password
    manager = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=sentinel_options
    )
    client: Redis = manager.master_for(
        target.service,
        connection_pool_class=_FollowingPool,
        max_connections=limits.REDIS_POOL_MAX,
        timeout=limits.REDIS_CALL_TIMEOUT,
        username=target.username,
        password=target.password,
        db=target.db,
        ssl=target.tls,
        **options,
    )
    return client


def failovers_seen(redis: Client) -> int:
    """How many times this client saw its primary move (Sentinel clients; else 0)."""
    pool = getattr(redis, "connection_pool", None)
    return pool.failovers if isinstance(pool, _FollowingPool) else 0


async def primary_address(redis: Client) -> tuple[str, int] | None:
    """Where the sentinels say the primary of ``redis`` is now (a Sentinel client; else None).

    Asking also moves the client along: its idle connections to a former primary are
    closed, its busy ones once returned, so its next commands go to the primary of now.
    """
    pool = getattr(redis, "connection_pool", None)
    if not isinstance(pool, _FollowingPool):
        return None
    host, port = await pool.get_master_address()
    return str(host), int(port)


def server_of(pubsub: PubSub) -> tuple[str, int] | None:
    """The (host, port) a subscriber connection is open to, or None."""
    connection = pubsub.connection
    if connection is None or not connection.is_connected:
        return None
    host, port = getattr(connection, "host", None), getattr(connection, "port", None)
    return (str(host), int(port)) if host is not None and port is not None else None


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
    if is_sentinel_url(url):
        return _sentinel_client(url, options)
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
    options: dict[str, Any] = {
        "decode_responses": False,  # a foreign message that is not UTF-8 must not break it
        "socket_timeout": None,
        "socket_connect_timeout": limits.REDIS_CONNECT_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
    if is_sentinel_url(url):
        # Each session asks the sentinels anew, so a reconnect lands on the new primary.
        return _sentinel_client(url, options)
    return Redis.from_url(url, **options)


async def is_reachable(redis: Client) -> bool:
    """True if Redis answers a PING in time."""
    try:
        return bool(await asyncio.wait_for(redis.ping(), limits.REDIS_CALL_TIMEOUT))
    except (RedisError, OSError, TimeoutError):
        return False


async def role(redis: Client) -> str:
    """The role of the server ``redis`` talks to (``master``, ``slave``; ``cluster`` for a
    cluster client, whose commands always go to the masters), or ``unknown``."""
    if isinstance(redis, RedisCluster):
        return "cluster"
    try:
        reply = await asyncio.wait_for(redis.execute_command("ROLE"), limits.REDIS_CALL_TIMEOUT)
    except (RedisError, OSError, TimeoutError):
        return "unknown"
    name = reply[0] if reply else b"unknown"
    return name.decode() if isinstance(name, bytes) else str(name)


def text(reply: str | bytes) -> str:
    """A reply as text, from a client that decodes responses or one that does not."""
    return reply.decode() if isinstance(reply, bytes) else reply


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
