"""Thousands of readers connecting and leaving — cleanly, abruptly, mid-replay — leave no
task, file descriptor or subscription behind in the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from livefeed.settings import Settings
from tests.conftest import LiveServer, RedisServer
from tests.helpers import TIMEOUT, auth, livefeed_env, recv_json, wait_for
from tests.reliability.toolkit import open_fds, position, report, sockets_by_peer

TOKEN = "reliability-token"
CYCLES = 2_000
CONCURRENCY = 20


async def _cycle(ws_url: str, n: int, since: str) -> None:
    """One reader's visit; how it ends depends on ``n``."""
    async with websockets.connect(ws_url, open_timeout=TIMEOUT, close_timeout=1) as ws:
        kind = n % 4
        if kind == 0:
            return  # connects and leaves without a word
        frame: dict[str, str] = {"type": "subscribe", "topic": "briefs"}
        if kind in (1, 3):
            frame["since"] = since  # a resume: replays history
        await ws.send(json.dumps(frame))
        if kind == 3:
            ws.transport.abort()  # gone without a close frame, possibly mid-replay
            return
        while (await recv_json(ws))["type"] != "subscribed":
            pass
        if kind == 2:
            await ws.send(json.dumps({"type": "ping"}))


async def _visits(ws_url: str, count: int, since: str) -> int:
    """``count`` visits, CONCURRENCY at a time; how many failed (refused or cut short)."""
    failures = 0
    numbers = iter(range(count))

    async def worker() -> None:
        nonlocal failures
        for n in numbers:
            try:
                await _cycle(ws_url, n, since)
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError):
                failures += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return failures


async def _publish_while(url: str, done: asyncio.Event) -> int:
    """Keep publishing (about 50/s) until ``done``, so visits meet live events too."""
    count = 0
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as api:
        while not done.is_set():
            response = await api.post(
                "/api/briefs", json={"text": f"brief {count}"}, headers=auth(TOKEN)
            )
            assert response.status_code == 201, response.text
            count += 1
            await asyncio.sleep(0.02)
    return count


async def _run_visits(url: str, ws_url: str, count: int, since: str) -> tuple[int, int]:
    done = asyncio.Event()
    publishing = asyncio.create_task(_publish_while(url, done))
    try:
        failures = await _visits(ws_url, count, since)
    finally:
        done.set()
    return failures, await publishing


async def _history(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as api:
        for i in range(30):
            await api.post("/api/briefs", json={"text": f"history {i}"}, headers=auth(TOKEN))


@pytest.fixture
async def busy_server(settings: Settings) -> AsyncIterator[LiveServer]:
    server = LiveServer(settings.with_(editor_token=TOKEN, max_connections_per_ip=1_000))
    await server.start()
    try:
        yield server
    finally:
        try:
            await server.stop()
        except TimeoutError:
            raise AssertionError(
                "livefeed did not shut down within 20 s after the connect/disconnect cycles "
                "(seen: its lifespan waiting in Ingest.stop() for an ingest task that lost its "
                "cancellation)"
            ) from None


def _tasks() -> int:
    return len(asyncio.all_tasks())


class Fds:
    """A process's open fds, with its connections to Redis apart: redis-py keeps idle pool
    connections (as many as were ever busy at once), which is not a leak."""

    def __init__(self, pid: int | str, redis_port: int) -> None:
        self.pid = pid
        self.redis_port = redis_port

    def redis(self) -> int:
        return sockets_by_peer(self.pid).get(f"to port {self.redis_port}", 0)

    def others(self) -> int:
        return open_fds(self.pid) - self.redis()


async def test_connect_disconnect_cycles_leak_no_task_fd_or_subscription_in_process(
    busy_server: LiveServer, redis_server: RedisServer
) -> None:
    server = busy_server
    state = server.services
    fds = Fds("self", redis_server.port)
    # Resume from well back, so replays are in flight when readers vanish.
    origin = await position(server.url)
    await _history(server.url)
    await _run_visits(server.url, server.ws_url, 200, origin)  # warm up pools and caches

    def settled() -> bool:
        return state.readers.counts() == {"ws": 0, "sse": 0} and not state.hub.topics()

    await wait_for(settled, what="the warm-up readers to be gone")
    tasks_before, fds_before, redis_before = _tasks(), fds.others(), fds.redis()
    failures, published = await _run_visits(server.url, server.ws_url, CYCLES, origin)
    await wait_for(settled, what="every reader to be gone")
    await wait_for(
        lambda: _tasks() <= tasks_before and fds.others() <= fds_before,
        what=f"tasks ({_tasks()} vs {tasks_before}) and fds ({fds.others()} vs {fds_before})",
    )
    report(
        f"{CYCLES} connect/disconnect cycles in-process ({published} briefs published meanwhile, "
        f"{failures} cut short): tasks {tasks_before} -> {_tasks()}, fds other than Redis "
        f"connections {fds_before} -> {fds.others()}, Redis connections {redis_before} -> "
        f"{fds.redis()}"
    )
    assert failures == 0


async def test_connect_disconnect_cycles_leak_no_fd_in_a_server_process(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    env = livefeed_env(
        redis_server.url, prefix, TOKEN, max_connections_per_ip=1000, log_level="warning"
    )
    server = await livefeed_process(env=env)
    assert server.process is not None
    fds = Fds(server.process.pid, redis_server.port)
    origin = await position(server.url)
    await _history(server.url)
    await _run_visits(server.url, server.ws_url, 200, origin)  # warm up

    def readers_gone() -> bool:
        return sockets_by_peer(fds.pid).get("reader", 0) == 0

    await wait_for(readers_gone, what="the warm-up readers' sockets to close")
    fds_before, redis_before = fds.others(), fds.redis()
    failures, published = await _run_visits(server.url, server.ws_url, CYCLES, origin)
    await wait_for(readers_gone, what="every reader's socket to close")
    await wait_for(
        lambda: fds.others() <= fds_before,
        what=f"the server's fds to settle ({fds.others()} vs {fds_before})",
    )
    report(
        f"{CYCLES} connect/disconnect cycles against a server process ({published} briefs "
        f"published meanwhile, {failures} cut short): fds other than Redis connections "
        f"{fds_before} -> {fds.others()}, Redis connections {redis_before} -> {fds.redis()}"
    )
    assert failures == 0
