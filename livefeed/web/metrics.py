"""``/metrics`` in Prometheus text format, and the HTTP middleware that counts and logs requests.

Everything here is read from plain counters (``stats.py``) and live state (readers, hub,
ingest) when Prometheus scrapes, so serving readers pays nothing for it.

With ``LIVEFEED_METRICS_PORT`` set, ``/metrics`` leaves the public listener (a load balancer
in front never exposes it) and is served on that internal port by ``MetricsListener``;
with ``--workers N`` worker ``i`` (0-based) serves its own on ``METRICS_PORT + i``, so every
scrape reads one process's counters, never a random one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import itertools
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from operator import attrgetter
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livefeed import errors
from livefeed.settings import Settings
from livefeed.stats import COLLECTOR_PAUSES, LATENCY_BUCKETS, LatencyHistogram, Stats

logger = logging.getLogger("livefeed.http")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# Every counter a scrape reads: its name, where its counts are (read from the collector's
# state), its label names, and its help. The counts are a Counter keyed by the label values
# (one value, or a tuple of them), or a single number when it has no labels.
_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("livefeed_events_published", "stats.published", "type source",
     "Events published by this process."),
    ("livefeed_frames_delivered", "stats.delivered", "transport",
     "Event frames written to readers."),
    ("livefeed_slow_consumer_disconnects", "stats.slow_disconnects", "transport",
     "Readers closed for reading too slowly."),
    ("livefeed_resumes", "stats.resumes", "recovered",
     "Subscriptions with a since id, by whether it was served."),
    ("livefeed_ingest_dead_letters", "stats.dead_letters", "source",
     "Ingest payloads sent to the dead-letter stream."),
    ("livefeed_http_requests", "stats.http", "route status",
     "HTTP requests by route and status."),
    ("livefeed_feed_requests", "stats.feeds", "feed status",
     "Atom and JSON feed requests, by feed and status (304: the reader was up to date)."),
    ("livefeed_embed_readers", "stats.embeds", "kind",
     "Embedded readers: /embed/read-next page views and live connections from other sites."),
    ("livefeed_pushes", "stats.pushes", "outcome",
     "Web Push outcomes per subscription: sent, failed, removed (gone), retried."),
    ("livefeed_redis_reconnects", "hub.reconnects", "",
     "Pub/sub reconnects."),
    ("livefeed_pubsub_gaps", "hub.gaps", "",
     "Live gaps noticed and replayed."),
    ("livefeed_events_gathered", "hub.gathered", "",
     "Events handed to readers together with others of their topic, one write per reader,"
     " because they arrived while the process was busy (a sign of load)."),
    ("livefeed_pubsub_silent", "hub.silent", "",
     "Liveness probes that did not come back."),
    ("livefeed_redis_failovers", "hub.failovers", "",
     "Times the Redis primary moved (Sentinel) or a cluster slot range changed owner."),
    ("livefeed_redis_writes_refused_seconds", "stats.refusing_seconds", "",
     "Seconds writes were refused because Redis could not take or replicate them."),
)  # fmt: skip


class LivefeedCollector(Collector):
    """Turns one app's state into metric families at scrape time."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        yield _clients(state.readers.counts())
        yield _subscriptions(state.hub.topics())
        for name, source, labels, documentation in _COUNTERS:
            counts = attrgetter(source)(state)
            yield _counter(name, documentation, labels.split(), counts)
        yield _latency(state.stats.latency)
        yield from _collector()


def _clients(counts: Mapping[str, int]) -> Metric:
    clients = GaugeMetricFamily(
        "livefeed_connected_clients", "Readers connected now.", labels=["transport"]
    )
    for transport, count in counts.items():
        clients.add_metric([transport], count)
    return clients


def _subscriptions(topics: Mapping[str, int]) -> Metric:
    subscriptions = GaugeMetricFamily(
        "livefeed_subscriptions", "Reader subscriptions by topic kind.", labels=["kind"]
    )
    by_kind: Counter[str] = Counter({"briefs": 0, "comments": 0, "article": 0})
    for topic, listeners in topics.items():
        by_kind[topic.split(":", 1)[0]] += listeners
    for kind, count in sorted(by_kind.items()):
        subscriptions.add_metric([kind], count)
    return subscriptions


def _counter(
    name: str, documentation: str, labels: list[str], counts: Mapping[Any, float] | float
) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    by_labels = (
        {_label_values(key): n for key, n in counts.items()}
        if isinstance(counts, Mapping)
        else {(): counts}
    )
    for label_values, value in sorted(by_labels.items()):
        family.add_metric(list(label_values), value)
    return family


def _label_values(key: Any) -> tuple[str, ...]:
    """Prometheus label values for a Counter key: ``True`` is "true", 200 is "200"."""
    values = key if isinstance(key, tuple) else (key,)
    return tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in values)


def _latency(latency: LatencyHistogram) -> Metric:
    cumulative, buckets = 0, []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), latency.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    histogram = HistogramMetricFamily(
        "livefeed_deliver_latency_seconds",
        "Time from an event's publication (its id's timestamp) to its frame being written.",
    )
    histogram.add_metric([], buckets, latency.sum)
    return histogram


def _collector() -> Iterator[Metric]:
    """The garbage collector: its pauses (once ``livefeed serve`` watches them) and what it
    froze (serving/collector.py)."""
    pauses = COLLECTOR_PAUSES
    collections = CounterMetricFamily(
        "livefeed_gc_collections", "Garbage collections, by generation.", labels=["generation"]
    )
    seconds = CounterMetricFamily(
        "livefeed_gc_pause_seconds",
        "Time the event loop stood still in garbage collections, by generation.",
        labels=["generation"],
    )
    for generation in range(3):
        collections.add_metric([str(generation)], pauses.collections[generation])
        seconds.add_metric([str(generation)], pauses.seconds[generation])
    yield collections
    yield seconds
    yield GaugeMetricFamily(
        "livefeed_gc_longest_pause_seconds",
        "The longest garbage collection pause since the process started serving.",
        value=pauses.longest,
    )
    yield GaugeMetricFamily(
        "livefeed_gc_frozen_objects",
        "Objects the collector no longer walks (frozen: they live as long as the process or"
        " their reader).",
        value=gc.get_freeze_count(),
    )


def registry_for(state: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LivefeedCollector(state))
    ProcessCollector(registry=registry)
    return registry


def _authorized(authorization: str, token: str | None) -> bool:
    if token is None:
        return True
    given = authorization.removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


_UNAUTHORIZED = errors.Unauthorized("metrics need Authorization: Bearer <metrics token>")


def metrics_endpoint(
    settings: Settings, registry: CollectorRegistry
) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics`` on the app's own port (when no metrics port is set)."""

    async def metrics(request: Request) -> Response:
        if settings.metrics_port is not None:  # served on the internal port only
            raise errors.NotFound("no such route")
        if not _authorized(request.headers.get("authorization", ""), settings.metrics_token):
            return JSONResponse(_UNAUTHORIZED.to_json(), status_code=401)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    return metrics


class MetricsListener:
    """``GET /metrics`` on an internal port: one request per connection, bounded reads."""

    _HEAD_MAX = 8 * 1024
    _READ_TIMEOUT = 5.0

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, token: str | None
    ) -> None:
        self._host, self._port = host, port
        self._registry, self._token = registry, token
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._answer, self._host, self._port, limit=self._HEAD_MAX
        )
        logger.info("metrics on http://%s:%d/metrics", self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, media = self._respond(head.decode("latin-1"))
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {media}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that went away or sent junk gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _respond(self, head: str) -> tuple[str, bytes, str]:
        request_line, *header_lines = head.split("\r\n")
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method not in ("GET", "HEAD") or path != "/metrics":
            return "404 Not Found", b'{"error":"not_found"}', "application/json"
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if not _authorized(headers.get("authorization", ""), self._token):
            return (
                "401 Unauthorized",
                json.dumps(_UNAUTHORIZED.to_json()).encode(),
                "application/json",
            )
        body = generate_latest(self._registry)
        return "200 OK", b"" if method == "HEAD" else body, CONTENT_TYPE


# Request ids: unique per process (a counter), told apart across processes by a random tag.
# They need not be unguessable, and reading the system's randomness per request cost 3 %.
_PROCESS_TAG = secrets.token_hex(3)
_REQUESTS = itertools.count(1)


class RequestLog:
    """ASGI middleware: a request id on every HTTP response, one log line, a count by route."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], stats: Stats) -> None:
        self._app = app
        self._stats = stats
        # Label requests by route template, never by raw path (bounded label values).
        self._templates: dict[Any, str] = {}
        for route in routes:
            if isinstance(route, (Route, WebSocketRoute)):
                self._templates[route.endpoint] = route.path
            elif isinstance(route, Mount):
                self._templates[route.app] = route.path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = f"{_PROCESS_TAG}{next(_REQUESTS):06x}"
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            endpoint = scope.get("endpoint") or scope.get("app")
            route = self._templates.get(endpoint, "unmatched")
            self._stats.http[route, status] += 1
            logger.info(
                "%s %s %d %.1fms rid=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
                extra={"request_id": request_id, "status": status, "route": route},
            )
