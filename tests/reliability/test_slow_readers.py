"""A reader that never reads costs the server a bounded amount of memory and nobody else
anything: it is dropped (1013) once its send queue is full, the others lose nothing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import RedisServer
from tests.helpers import (
    TIMEOUT,
    Background,
    auth,
    connect_without_reading,
    livefeed_env,
    subscribe,
)
from tests.reliability.checker import TRY_AGAIN_LATER, start_all, stop_all, wait_until_all_have
from tests.reliability.toolkit import checkers, history_ids, position, report, rss_kib

TOKEN = "reliability-token"
SLUG = "slow-readers"
TOPIC = f"comments:{SLUG}"
READERS = 100
RATE = 200.0  # comments per second
SECONDS = 7.0
# Russian text, as on the page livefeed is modelled on: 2,000 characters, ~3.7 KB of UTF-8.
TEXT = ("Си Цзиньпин и Владимир Путин провели переговоры в Москве. " * 40)[:2000]


class Sampler(Background):
    """Samples a process's resident memory every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []

    async def run(self) -> None:
        while True:
            self.samples.append(rss_kib(self.pid))
            await asyncio.sleep(0.1)


async def _publish_comments(url: str, seconds: float) -> list[int]:
    """POST comments at RATE for ``seconds``; the status of each answer."""
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as api:

        async def post(n: int) -> None:
            response = await api.post(
                f"/api/articles/{SLUG}/comments", json={"author": f"reader {n}", "text": TEXT}
            )
            statuses.append(response.status_code)

        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.TaskGroup() as group:
            for n in range(int(RATE * seconds)):
                await asyncio.sleep(max(0.0, start + n / RATE - loop.time()))
                group.create_task(post(n))
    return statuses


async def _server_with_the_article(
    livefeed_process: Any, redis_server: RedisServer, prefix: str
) -> tuple[Any, str]:
    """A livefeed process that takes comments as fast as they come, with the article they
    are on; where the article's comments stand."""
    env = livefeed_env(
        redis_server.url,
        prefix,
        TOKEN,
        comment_rate="100000/second",
        max_connections_per_ip=1000,
        history_size=100_000,
        log_level="warning",
    )
    server = await livefeed_process(env=env)
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as api:
        article = {"title": "Slow readers", "summary": "s", "body": ["b"]}
        response = await api.put(f"/api/articles/{SLUG}", json=article, headers=auth(TOKEN))
        assert response.status_code == 201, response.text
    return server, await position(server.url, f"/api/articles/{SLUG}/comments")


async def _read_until_closed(ws: Any) -> tuple[list[str], ConnectionClosed]:
    """The ids of the events a reader was sent, read until the server's close."""
    got: list[str] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            got.append(frame["id"])
    return got, closed.value


@pytest.mark.timeout(120)
async def test_a_reader_that_never_reads_is_dropped_and_costs_little_memory(
    livefeed_process: Any, redis_server: RedisServer, prefix: str
) -> None:
    server, since = await _server_with_the_article(livefeed_process, redis_server, prefix)
    assert server.process is not None
    pid = server.process.pid
    readers = checkers([server.ws_url], READERS, since, topic=TOPIC)
    await start_all(readers)
    slow = await connect_without_reading(server.port)
    sampler = Sampler(pid)
    try:
        await subscribe(slow, TOPIC, since=since)
        baseline = rss_kib(pid)
        sampler.start()
        started = time.monotonic()
        statuses = await _publish_comments(server.url, SECONDS)
        published_in = time.monotonic() - started
        truth = await history_ids(redis_server.url, prefix, TOPIC)
        await wait_until_all_have(readers, TOPIC, truth, timeout=TIMEOUT * 2)
        await sampler.stop()
        after = rss_kib(pid)
        # Now read what the slow reader was sent: a prefix of the topic, then the end.
        got, closed = await _read_until_closed(slow)
    finally:
        await sampler.stop()
        await stop_all(readers)
        await slow.close()
    assert statuses == [201] * len(statuses)
    assert len(statuses) == len(truth)
    for reader in readers:
        reader.check(TOPIC, truth)
        assert reader.connections == 1, f"{reader.name} was closed too: {reader.closes}"
    # The slow reader got a gap-free prefix and was then closed: 1013 if the close frame
    # reached it (it queues behind what it never read), else the connection just ended.
    assert got == truth[: len(got)] and len(got) < len(truth), (len(got), len(truth))
    assert closed.rcvd is None or closed.rcvd.code == TRY_AGAIN_LATER
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as api:
        metrics = (await api.get("/metrics")).text
    assert 'livefeed_slow_consumer_disconnects_total{transport="ws"} 1' in metrics, [
        line for line in metrics.splitlines() if "slow" in line
    ]
    peak = max(sampler.samples)
    growth_mib = (peak - baseline) / 1024
    report(
        f"slow reader + {READERS} readers, {len(truth)} comments of ~3.7 KB in "
        f"{published_in:.1f}s ({len(truth) / published_in:.0f}/s): slow reader dropped after "
        f"{len(got)} events, code {closed.rcvd.code if closed.rcvd else 'none'}; "
        f"server RSS {baseline / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB "
        f"(+{growth_mib:.1f} MiB), {after / 1024:.1f} MiB after"
    )
    assert growth_mib < 50, f"RSS grew by {growth_mib:.1f} MiB"
