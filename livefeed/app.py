"""create_app(settings) -> Starlette: the one place that wires livefeed together.

It builds the Services (settings, Redis clients, hub, content, desk, readers…), the routes
and the middleware; the app's lifespan starts the services and stops them, each stop
bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from livefeed import editor, errors, limits
from livefeed.api import articles, briefs, health, push
from livefeed.errors import LivefeedError
from livefeed.fanout.desk import DeskFeed
from livefeed.fanout.hub import Hub
from livefeed.fanout.readers import Readers
from livefeed.ingest import Ingest
from livefeed.lifecycle import DRAIN_READERS
from livefeed.pages import embed, feeds
from livefeed.push.service import PushService
from livefeed.services import Late, Services, attach
from livefeed.settings import Settings, mask_url
from livefeed.stats import Stats
from livefeed.storage.comments import CommentRules
from livefeed.storage.connect import connect, is_cluster_url, problem
from livefeed.storage.content import Content
from livefeed.storage.demo import load_demo
from livefeed.storage.desk import Desk
from livefeed.storage.editors import Editors
from livefeed.storage.eventlog import EventLog
from livefeed.storage.ingest import IngestStore, consumer_name
from livefeed.storage.keys import Keys
from livefeed.storage.logins import LoginGuard
from livefeed.storage.moderation import Moderation
from livefeed.storage.presence import Presence, ReaderCounts
from livefeed.storage.sessions import Sessions
from livefeed.transports import websocket
from livefeed.transports.sse import events_endpoint
from livefeed.web.cors import Cors
from livefeed.web.failures import retry_headers
from livefeed.web.guard import Guard, LiveConnections
from livefeed.web.metrics import MetricsListener, RequestLog, metrics_endpoint, registry_for

logger = logging.getLogger("livefeed")

try:  # the reader pages land separately; the API works without them
    from livefeed.pages import reader as pages
except ImportError:  # pragma: no cover
    pages = None  # type: ignore[assignment]


def _json_error(exc: LivefeedError) -> Response:
    return JSONResponse(exc.to_json(), status_code=exc.status, headers=retry_headers(exc))


async def _livefeed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LivefeedError)
    if isinstance(exc, errors.NotFound) and pages is not None and _wants_html(request):
        return await pages.not_found_page(request)
    return _json_error(exc)


async def _redis_error(request: Request, exc: Exception) -> Response:
    logger.warning("Redis unavailable during %s %s: %s", request.method, request.url.path, exc)
    return _json_error(errors.Unavailable())


async def _io_error(request: Request, exc: Exception) -> Response:
    """A connection that broke under a request (a Redis failover can cut one mid-command in
    ways redis-py does not wrap): the client may retry, so 503, never a 500."""
    logger.warning("I/O failure during %s %s", request.method, request.url.path, exc_info=exc)
    return _json_error(errors.Unavailable())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and pages is not None and _wants_html(request):
        return await pages.not_found_page(request)
    code = {404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED}.get(exc.status_code, "http")
    return JSONResponse(
        LivefeedError(str(exc.detail), code=code).to_json(),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


async def _bounded(step: str, stopping: Coroutine[Any, Any, None]) -> None:
    """Run one shutdown step, but never longer than SHUTDOWN_STEP: a paused Redis or a
    stuck task must not keep the process from exiting (the orchestrator would SIGKILL it)."""
    try:
        async with asyncio.timeout(limits.SHUTDOWN_STEP):
            await stopping
    except TimeoutError:
        logger.error("shutdown: %s took over %.1f s; going on", step, limits.SHUTDOWN_STEP)
    except (RedisError, OSError) as exc:
        logger.warning("shutdown: %s: %s", step, exc)


class LivefeedApp(Starlette):
    """Starlette, with the reader WebSocket (``/ws``) served before middleware and routing.

    Thousands of readers hold their connection for hours: each would otherwise keep a
    suspended coroutine frame and a send wrapper of every middleware, the router's and the
    exception handlers', for the whole connection (about 6 KB a reader, measured). The
    reader transport does for itself what those layers would do for it.
    """

    def __init__(self, reader_sockets: websocket.ReaderSockets, **options: Any) -> None:
        super().__init__(**options)
        self._reader_sockets = reader_sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and get_route_path(scope) == websocket.PATH:
            scope["app"] = self
            await self._reader_sockets(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    """The livefeed ASGI app for ``settings`` (whose ``redis_url`` must be set)."""
    if settings.redis_url is None:
        raise RuntimeError("create_app needs settings.redis_url (the CLI starts embedded Redis)")
    services = _services(settings, settings.redis_url)
    registry = registry_for(services)
    routes = _routes(settings, registry)
    live = LiveConnections(settings.max_connections_per_ip, settings.trusted_proxies)
    app = LivefeedApp(
        websocket.ReaderSockets(services, live),
        routes=routes,
        lifespan=_lifespan(services, registry),
        middleware=[
            Middleware(RequestLog, routes=routes, stats=services.stats),
            Middleware(Guard, live=live),
            Middleware(Cors, allowed=settings.allowed_origins, stats=services.stats),
        ],
        exception_handlers={
            LivefeedError: _livefeed_error,
            RedisError: _redis_error,
            OSError: _io_error,
            HTTPException: _http_error,
        },
    )
    attach(app, services)
    return app


def _services(settings: Settings, redis_url: str) -> Services:
    """Every service of one app, built but not started: Redis clients connect on first use."""
    keys, stats = Keys(settings.redis_prefix), Stats()
    redis = connect(redis_url)
    log = EventLog(
        redis,
        keys,
        settings.history_size,
        sharded=is_cluster_url(redis_url),
        min_replicas=settings.redis_min_replicas,
    )
    rules = CommentRules(settings.comment_blocklist, settings.comment_max_links)
    content = Content(redis, keys, log, settings.comment_rate, stats, rules)
    ingest_redis = connect(redis_url, decode=False, blocking=limits.INGEST_BLOCK)
    return Services(
        settings=settings,
        stats=stats,
        keys=keys,
        redis=redis,
        log=log,
        hub=Hub(redis_url, redis, log, keys),
        content=content,
        ingest_redis=ingest_redis,
        ingest=Ingest(IngestStore(ingest_redis, keys, consumer_name()), content, stats),
        readers=Readers(settings.drain_seconds),
        # The editors' desk: accounts, sessions, credited writes, its live notices.
        desk=Desk(redis, keys, content),
        desk_feed=DeskFeed(),
        moderation=Moderation(redis, keys, content.comments, settings.report_rate),
        editors=Editors(redis, keys),
        sessions=Sessions(redis, keys),
        logins=LoginGuard(redis, keys),
        presence=Presence(redis, keys),
        push=Late("the Web Push service"),
        session_key=Late("the session signing key"),
    )


def _routes(settings: Settings, registry: CollectorRegistry) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        *health.routes,
        *briefs.routes,
        *articles.routes,
        Route("/events", events_endpoint),
        Route("/metrics", metrics_endpoint(settings, registry)),
        *feeds.routes(),
        *embed.routes(),
        *push.routes(),
    ]
    if pages is not None:
        routes.extend(pages.routes())
    routes.extend(editor.routes())
    return routes


Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[Mapping[str, Any]]]


def _lifespan(services: Services, registry: CollectorRegistry) -> Lifespan:
    """Start the services, serve, stop them. The state it yields offers the server the
    readers' drain (``DRAIN_READERS``), so the server needs no route module to find it."""
    settings, hub, keys = services.settings, services.hub, services.keys

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        metrics = None
        if settings.metrics_port is not None:
            metrics = MetricsListener(
                settings.host, settings.metrics_port, registry, settings.metrics_token
            )
        await hub.listen(keys.ingest(), services.ingest.on_message)
        await hub.listen(keys.desk.notices, services.desk_feed.on_message)
        try:
            await _start(services, metrics)
            yield {DRAIN_READERS: services.readers.drain}
        finally:
            await _stop(services, metrics)

    return lifespan


async def _start(services: Services, metrics: MetricsListener | None) -> None:
    settings = services.settings
    trouble = await problem(services.redis)
    if trouble is not None:
        # Fail fast and say why, instead of retrying in the background forever.
        where = mask_url(settings.redis_url or "")
        logger.error("cannot use Redis at %s: %s", where, trouble)
        raise RuntimeError(f"Redis at {where}: {trouble}")
    await services.hub.start()
    push = await PushService.open(
        services.redis,
        services.keys,
        settings,
        services.content,
        services.stats,
        consumer_name(),
    )
    services.push.set(push)
    services.session_key.set(await services.sessions.signing_key(settings.secret_key))
    readers, hub = services.readers, services.hub
    services.presence.start(lambda: ReaderCounts.of(readers.counts(), hub.topics()))
    if settings.demo:
        added = await load_demo(services.content)
        logger.info("demo content loaded (%d new briefs)", added)
    services.ingest.start()
    if metrics is not None:
        await metrics.start()
    push.dispatcher.start()


async def _stop(services: Services, metrics: MetricsListener | None) -> None:
    if metrics is not None:
        await _bounded("metrics listener", metrics.stop())
    await services.readers.drain()  # bounded by the drain window itself
    push = services.push.get_or_none()
    if push is not None:
        await _bounded("push dispatcher", push.dispatcher.stop())
    await _bounded("presence", services.presence.stop())
    await _bounded("ingest", services.ingest.stop())
    await _bounded("hub", services.hub.stop())
    await _bounded("ingest connections", services.ingest_redis.aclose())
    await _bounded("command connections", services.redis.aclose())
