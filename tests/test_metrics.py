"""What an operator sees: /metrics after a session, /readyz through a Redis outage, logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import httpx
import redis.asyncio as aioredis
import websockets
from prometheus_client.parser import text_string_to_metric_families

from livefeed.settings import Settings
from tests.conftest import LiveServer, RedisServer
from tests.helpers import TIMEOUT, auth, free_port, recv_json, subscribe, wait_for


async def scrape(api: httpx.AsyncClient, **headers: str) -> dict[tuple[str, tuple], float]:
    response = await api.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_follow_a_scripted_session(
    live_server: LiveServer, api: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    before = await scrape(api)
    assert value(before, "livefeed_connected_clients", transport="ws") == 0
    admin = aioredis.Redis.from_url(redis_server.url)
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        await subscribe(ws, "comments:some-article", since="not-an-id")
        response = await api.post(
            "/api/briefs", json={"text": "Metered"}, headers=auth(live_server.token)
        )
        assert response.status_code == 201
        await recv_json(ws)
        await admin.publish(f"{live_server.settings.redis_prefix}ingest", b"{not json")
        stats = live_server.services.stats
        await wait_for(lambda: stats.dead_letters["pubsub"] == 1, what="the dead letter")
        during = await scrape(api)
    await admin.aclose()
    assert value(during, "livefeed_connected_clients", transport="ws") == 1
    assert value(during, "livefeed_subscriptions", kind="briefs") == 1
    assert value(during, "livefeed_subscriptions", kind="comments") == 1
    published = value(
        during, "livefeed_events_published_total", type="brief.published", source="api"
    )
    assert published == 1
    assert value(during, "livefeed_frames_delivered_total", transport="ws") == 1
    assert value(during, "livefeed_resumes_total", recovered="false") == 1
    assert value(during, "livefeed_ingest_dead_letters_total", source="pubsub") == 1
    assert value(during, "livefeed_http_requests_total", route="/api/briefs", status="201") == 1
    assert value(during, "livefeed_deliver_latency_seconds_count") == 1
    assert value(during, "livefeed_deliver_latency_seconds_bucket", le="+Inf") == 1
    assert 0 < value(during, "livefeed_deliver_latency_seconds_sum") < 5
    after = await scrape(api)
    assert value(after, "livefeed_connected_clients", transport="ws") == 0


async def test_a_slow_consumer_disconnect_is_counted(live_server: LiveServer, api) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", live_server.port))
    slow = await websockets.connect(live_server.ws_url, sock=sock, max_queue=1)
    try:
        await subscribe(slow, "briefs")
        stats = live_server.services.stats
        text = "x" * 8192
        for i in range(1024):
            await live_server.services.log.append(
                "briefs", "brief.published", {"id": str(i), "text": text}
            )
            if stats.slow_disconnects["ws"]:
                break
        await wait_for(
            lambda: stats.slow_disconnects["ws"] == 1, what="the slow reader to be dropped"
        )
        samples = await scrape(api)
        assert value(samples, "livefeed_slow_consumer_disconnects_total", transport="ws") == 1
    finally:
        await slow.close()


async def test_metrics_token_is_required_when_set(settings: Settings) -> None:
    server = LiveServer(settings.with_(metrics_token="scrape-me"))
    await server.start()
    try:
        async with server.client() as api:
            assert (await api.get("/metrics")).status_code == 401
            wrong = await api.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            await scrape(api, Authorization="Bearer scrape-me")
    finally:
        await server.stop()


async def test_every_response_carries_a_request_id(api: httpx.AsyncClient) -> None:
    first, second = await api.get("/healthz"), await api.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_readyz_fails_while_redis_is_down_and_recovers_without_a_restart(
    tmp_path, prefix: str
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    server = LiveServer(
        Settings(
            port=0, redis_url=redis.url, redis_prefix=prefix, editor_token="t", drain_seconds=0.2
        )
    )
    await server.start()
    try:
        async with server.client() as api:
            assert (await api.get("/readyz")).status_code == 200
            redis.stop()
            loop = asyncio.get_running_loop()
            stopped = loop.time()

            async def status() -> int:
                return (await api.get("/readyz")).status_code

            await wait_for(lambda: _is(status, 503), timeout=5, what="/readyz to fail")
            failing = (await api.get("/readyz")).json()["failing"]
            assert "redis" in failing
            print(f"/readyz failed {loop.time() - stopped:.2f}s after Redis stopped")
            briefs = await api.get("/api/briefs")
            assert briefs.status_code == 503
            assert briefs.headers["retry-after"]
            redis.start()
            returned = loop.time()
            await wait_for(lambda: _is(status, 200), timeout=5, what="/readyz to recover")
            print(f"/readyz recovered {loop.time() - returned:.2f}s after Redis returned")
    finally:
        await server.stop()
        redis.stop()


async def _is(status, expected: int) -> bool:
    return await status() == expected


async def test_json_logs_have_one_object_per_line_with_request_ids(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    token = "leak-canary-token"
    env = {
        "LIVEFEED_REDIS_URL": redis_server.url,
        "LIVEFEED_REDIS_PREFIX": prefix,
        "LIVEFEED_EDITOR_TOKEN": token,
    }
    proc = await livefeed_process(["--log-format", "json"], env)
    async with httpx.AsyncClient(base_url=proc.url, timeout=TIMEOUT) as api:
        response = await api.post(
            "/api/articles/a/comments", json={"author": "Ann", "text": "secret words"}
        )
        assert response.status_code == 404
    await wait_for(
        lambda: response.headers["x-request-id"] in proc.output, what="the request log line"
    )
    lines = [line for line in proc.output.splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    request = next(e for e in entries if e.get("request_id") == response.headers["x-request-id"])
    assert request["status"] == 404 and request["level"] == "info"
    assert "secret words" not in proc.output  # no comment bodies at info level
    assert token not in proc.output  # no secrets
    assert any("settings" in e["message"] for e in entries)


def test_the_dashboard_only_charts_metrics_livefeed_exports() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    dashboard = json.loads((root / "deploy/grafana/livefeed-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"livefeed_[a-z_]+", e)}
    source = (root / "livefeed/web/metrics.py").read_text()
    for metric in used:
        base = re.sub(r"_(total|bucket|count|sum)$", "", metric)
        assert f'"{base}"' in source, (
            f"the dashboard charts {metric}, which livefeed does not export"
        )
    compose = (root / "docker-compose.yml").read_text()
    assert 'profiles: ["monitoring"]' in compose and "deploy/prometheus.yml" in compose


def _free_ports(count: int) -> int:
    """A base port with ``count`` free ports from it (workers take METRICS_PORT + i)."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise AssertionError("no run of free ports")


async def test_workers_are_scraped_each_on_its_own_port_and_sum_to_the_whole_server(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    base = _free_ports(2)
    env = {
        "LIVEFEED_REDIS_URL": redis_server.url,
        "LIVEFEED_REDIS_PREFIX": prefix,
        "LIVEFEED_EDITOR_TOKEN": "t",
        "LIVEFEED_METRICS_PORT": str(base),
        "LIVEFEED_DRAIN_SECONDS": "0.2",
    }
    server = await livefeed_process(["--workers", "2"], env)
    scrapes = [f"http://127.0.0.1:{base + i}/metrics" for i in range(2)]

    async def per_worker(api: httpx.AsyncClient) -> list[float]:
        counts = []
        for url in scrapes:
            response = await api.get(url)
            assert response.status_code == 200, response.text
            samples = {}
            for family in text_string_to_metric_families(response.text):
                for sample in family.samples:
                    samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
            counts.append(
                value(samples, "livefeed_http_requests_total", route="/api/briefs", status="200")
            )
        return counts

    async with httpx.AsyncClient(timeout=TIMEOUT) as api:
        await wait_for(lambda: _all_listening(base, 2), what="both workers' metrics ports")
        # The public port no longer answers /metrics: a load balancer cannot expose it.
        assert (await api.get(server.url + "/metrics")).status_code == 404
        for _ in range(40):
            api_request = await api.get(server.url + "/api/briefs", headers={"Connection": "close"})
            assert api_request.status_code == 200
        first = await per_worker(api)
        assert sum(first) == 40
        for _ in range(20):
            api_request = await api.get(server.url + "/api/briefs", headers={"Connection": "close"})
            assert api_request.status_code == 200
        second = await per_worker(api)
        assert sum(second) == 60
        assert all(b >= a for a, b in zip(first, second, strict=True)), (first, second)


def _all_listening(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return False
    return True


async def test_metrics_port_serves_metrics_off_the_public_port(settings: Settings) -> None:
    metrics_port = free_port()
    server = LiveServer(settings.with_(metrics_port=metrics_port, metrics_token="scrape-me"))
    await server.start()
    internal = f"http://127.0.0.1:{metrics_port}"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            public = await client.get(server.url + "/metrics", headers=auth("scrape-me"))
            assert public.status_code == 404
            assert (await client.get(internal + "/metrics")).status_code == 401
            scraped = await client.get(internal + "/metrics", headers=auth("scrape-me"))
            assert scraped.status_code == 200
            assert "livefeed_connected_clients" in scraped.text
            assert (await client.get(internal + "/", headers=auth("scrape-me"))).status_code == 404
            # Junk on the internal port is dropped; the next scrape is answered.
            reader, writer = await asyncio.open_connection("127.0.0.1", metrics_port)
            writer.write(b"\x00\xff not http at all\r\n\r\n")
            await writer.drain()
            assert b"404" in await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            again = await client.get(internal + "/metrics", headers=auth("scrape-me"))
            assert again.status_code == 200
    finally:
        await server.stop()
