"""create_app(settings) -> Starlette. Its lifespan owns the Redis clients, the hub and readers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from livefeed import editor, errors, limits
from livefeed.api import articles, briefs, health
from livefeed.editor.live import DeskFeed
from livefeed.errors import LivefeedError
from livefeed.fanout.hub import Hub
from livefeed.fanout.readers import Readers
from livefeed.ingest import Ingest
from livefeed.logs import configure_logging
from livefeed.pages import embed, feeds
from livefeed.push import api as push_api
from livefeed.push.service import PushService
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
from livefeed.transports.sse import events_endpoint
from livefeed.transports.websocket import websocket_endpoint
from livefeed.web.cors import Cors
from livefeed.web.guard import Guard
from livefeed.web.metrics import MetricsListener, RequestLog, metrics_endpoint, registry_for

logger = logging.getLogger("livefeed")

try:  # the reader pages land separately; the API works without them
    from livefeed.pages import reader as pages
except ImportError:  # pragma: no cover
    pages = None  # type: ignore[assignment]


def _json_error(exc: LivefeedError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)


async def _livefeed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LivefeedError)
    if isinstance(exc, errors.RateLimited):
        return _json_error(exc, {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, errors.Unavailable):
        return _json_error(exc, {"Retry-After": str(limits.RETRY_AFTER_REDIS_DOWN)})
    if isinstance(exc, errors.NotFound) and pages is not None and _wants_html(request):
        return await pages.not_found_page(request)
    return _json_error(exc)


async def _redis_error(request: Request, exc: Exception) -> Response:
    logger.warning("Redis unavailable during %s %s: %s", request.method, request.url.path, exc)
    return _json_error(errors.Unavailable(), {"Retry-After": str(limits.RETRY_AFTER_REDIS_DOWN)})


async def _io_error(request: Request, exc: Exception) -> Response:
    """A connection that broke under a request (a Redis failover can cut one mid-command in
    ways redis-py does not wrap): the client may retry, so 503, never a 500."""
    logger.warning("I/O failure during %s %s", request.method, request.url.path, exc_info=exc)
    return _json_error(errors.Unavailable(), {"Retry-After": str(limits.RETRY_AFTER_REDIS_DOWN)})


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


def create_app(settings: Settings) -> Starlette:
    """The livefeed ASGI app for ``settings`` (whose ``redis_url`` must be set)."""
    if settings.redis_url is None:
        raise RuntimeError("create_app needs settings.redis_url (the CLI starts embedded Redis)")
    redis_url = settings.redis_url
    stats = Stats()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        keys = Keys(settings.redis_prefix)
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
        hub = Hub(redis_url, redis, log, keys)
        raw_redis = connect(redis_url, decode=False, blocking=limits.INGEST_BLOCK)
        ingest = Ingest(IngestStore(raw_redis, keys, consumer_name()), content, stats)
        await hub.listen(keys.ingest(), ingest.on_message)
        state: Any = app.state
        state.settings, state.redis, state.keys = settings, redis, keys
        state.log, state.content, state.hub, state.ingest = log, content, hub, ingest
        state.readers = Readers(settings.drain_seconds)
        state.stats = stats
        state.metrics_registry = registry_for(state)
        metrics_listener = None
        if settings.metrics_port is not None:
            metrics_listener = MetricsListener(
                settings.host, settings.metrics_port, state.metrics_registry, settings.metrics_token
            )
        # The editors' desk: accounts, sessions, credited writes, its live notices, readers.
        state.desk, state.desk_feed = Desk(redis, keys, content), DeskFeed()
        state.moderation = Moderation(redis, keys, content.comments, settings.report_rate)
        state.editors, state.sessions = Editors(redis, keys), Sessions(redis, keys)
        state.logins, state.presence = LoginGuard(redis, keys), Presence(redis, keys)
        await hub.listen(keys.desk.notices, state.desk_feed.on_message)
        try:
            trouble = await problem(redis)
            if trouble is not None:
                # Fail fast and say why, instead of retrying in the background forever.
                logger.error("cannot use Redis at %s: %s", mask_url(redis_url), trouble)
                raise RuntimeError(f"Redis at {mask_url(redis_url)}: {trouble}")
            await hub.start()
            state.push = await PushService.open(
                redis, keys, settings, content, stats, consumer_name()
            )
            state.session_key = await state.sessions.signing_key(settings.secret_key)
            state.presence.start(lambda: ReaderCounts.of(state.readers.counts(), hub.topics()))
            if settings.demo:
                added = await load_demo(content)
                logger.info("demo content loaded (%d new briefs)", added)
            ingest.start()
            if metrics_listener is not None:
                await metrics_listener.start()
            state.push.dispatcher.start()
            yield
        finally:
            if metrics_listener is not None:
                await _bounded("metrics listener", metrics_listener.stop())
            await state.readers.drain()  # bounded by the drain window itself
            if hasattr(state, "push"):
                await _bounded("push dispatcher", state.push.dispatcher.stop())
            await _bounded("presence", state.presence.stop())
            await _bounded("ingest", ingest.stop())
            await _bounded("hub", hub.stop())
            await _bounded("ingest connections", raw_redis.aclose())
            await _bounded("command connections", redis.aclose())

    routes: list[BaseRoute] = [
        *health.routes,
        *briefs.routes,
        *articles.routes,
        WebSocketRoute("/ws", websocket_endpoint),
        Route("/events", events_endpoint),
        Route("/metrics", metrics_endpoint),
        *feeds.routes(),
        *embed.routes(),
        *push_api.routes(),
    ]
    if pages is not None:
        routes.extend(pages.routes())
    routes.extend(editor.routes())
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(RequestLog, routes=routes, stats=stats),
            Middleware(Guard, max_per_address=settings.max_connections_per_ip),
            Middleware(Cors, allowed=settings.allowed_origins, stats=stats),
        ],
        exception_handlers={
            LivefeedError: _livefeed_error,
            RedisError: _redis_error,
            OSError: _io_error,
            HTTPException: _http_error,
        },
    )


def app_from_environment() -> Starlette:
    """The app of one worker process of ``livefeed serve --workers N``.

    The parent process resolved every setting (the embedded Redis URL, the editor token)
    and exported them as ``LIVEFEED_*`` variables before starting the workers.
    """
    settings = Settings.load(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
