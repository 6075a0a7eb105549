"""A livefeed process dies (SIGKILL) or is stopped (SIGTERM, drained): its readers resume on
another process from their last id and miss nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx

from tests.conftest import RedisServer
from tests.helpers import FACTOR, TIMEOUT, livefeed_env, wait_for
from tests.reliability.checker import GOING_AWAY
from tests.reliability.toolkit import (
    Publisher,
    Watch,
    checkers,
    position,
    report,
    sockets_by_peer,
)

TOKEN = "reliability-token"


def _env(redis: RedisServer, prefix: str, **settings: object) -> dict[str, str]:
    return livefeed_env(redis.url, prefix, TOKEN, log_level="warning", **settings)


async def _movers(
    leaving: Any, staying: Any, count: int, redis: RedisServer, prefix: str, stayers: int = 0
) -> Watch:
    """``count`` readers of ``leaving`` that move to ``staying`` when it goes (and
    ``stayers`` on ``staying`` alone), while an editor posts 50 briefs/s to ``staying``."""
    since = await position(staying.url)
    readers = checkers([leaving.ws_url, staying.ws_url], count, since, name="mover")
    readers += checkers([staying.ws_url], stayers, since, name="stayer")
    return Watch(readers, Publisher(staying.url, TOKEN, rate=50.0), redis.url, prefix)


async def test_readers_of_a_sigkilled_process_resume_on_the_other_without_loss(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    doomed = await livefeed_process(env=_env(redis_server, prefix))
    survivor = await livefeed_process(env=_env(redis_server, prefix))
    watch = await _movers(doomed, survivor, 10, redis_server, prefix, stayers=5)
    movers = watch.readers[:10]
    async with watch:
        watch.publisher.start(seconds=4.0)
        await asyncio.sleep(1.5)
        doomed.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        truth = await watch.settle()
    watch.every_write_acknowledged(truth)
    watch.check(truth)
    for mover in movers:
        assert mover.connections == 2 and mover.closes == [None], (mover.name, mover.closes)
    resumed = max(m.close_times[0] for m in movers) - killed_at
    report(
        f"SIGKILL of one of two processes: {len(movers)} readers moved, every reader got all "
        f"{len(truth)} events once, in order (the last one noticed {resumed:.2f}s after the kill)"
    )


async def test_sigterm_drains_readers_with_1001_and_they_resume_elsewhere_without_loss(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    drain = 2.0
    leaving = await livefeed_process(["--drain-seconds", str(drain)], _env(redis_server, prefix))
    staying = await livefeed_process(env=_env(redis_server, prefix))
    async with await _movers(leaving, staying, 20, redis_server, prefix) as watch:
        movers = watch.readers
        watch.publisher.start(seconds=5.0)
        await asyncio.sleep(1.0)
        assert leaving.process is not None
        leaving.process.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        not_ready: list[httpx.Response] = []
        async with httpx.AsyncClient(base_url=leaving.url, timeout=TIMEOUT) as api:

            async def turned() -> bool:
                response = await api.get("/readyz")  # it still answers while it drains
                if response.status_code == 503:
                    not_ready.append(response)
                return bool(not_ready)

            await wait_for(turned, timeout=drain, what="/readyz to say 503 while draining")
        await wait_for(
            lambda: leaving.process.poll() is not None,
            timeout=drain + 10,
            what="the drained process to exit",
        )
        exited_after = time.monotonic() - sent_at
        exit_code = leaving.process.returncode
        truth = await watch.settle()
    assert "shutdown" in not_ready[0].json()["failing"], not_ready[0].text
    assert exit_code == 0, leaving.output
    watch.every_write_acknowledged(truth)
    watch.check(truth, connections=2)
    for mover in movers:
        assert mover.closes == [GOING_AWAY], (mover.name, mover.closes)
    closed = sorted(m.close_times[0] - sent_at for m in movers)
    # Spread over the drain window rather than all at once (a reconnect storm).
    assert closed[-1] - closed[0] > drain / 4, closed
    assert closed[-1] < drain + 1.0 * FACTOR, closed
    report(
        f"SIGTERM drain ({drain:.0f}s window): {len(movers)} readers closed with 1001 from "
        f"{closed[0]:.2f}s to {closed[-1]:.2f}s, resumed on the other process with all "
        f"{len(truth)} events; process exited after {exited_after:.2f}s"
    )


async def test_a_reconnect_storm_is_answered_from_redis_without_loss(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    """300 readers lose their process at once and all resume on the other: each one gets
    ``subscribed`` (never an error while Redis is up) and then every event once, in order."""
    env = _env(redis_server, prefix, max_connections_per_ip=1000)
    doomed = await livefeed_process(env=env)
    survivor = await livefeed_process(env=env)
    assert survivor.process is not None
    # The Watch lets them arrive gently, 50 at a time; the storm comes with the kill.
    async with await _movers(doomed, survivor, 300, redis_server, prefix) as watch:
        movers = watch.readers
        watch.publisher.start(seconds=4.0)
        await asyncio.sleep(1.0)
        redis_before = sockets_by_peer(survivor.process.pid).get(f"to port {redis_server.port}")
        doomed.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        await wait_for(
            lambda: all(m.connections == 2 and (m.live.is_set() or m.errors) for m in movers),
            timeout=TIMEOUT * 2,
            what="every reader to be answered by the survivor",
        )
        resumed = time.monotonic() - killed_at
        redis_after = sockets_by_peer(survivor.process.pid).get(f"to port {redis_server.port}")
        refused = [m for m in movers if m.errors]
        assert len(refused) == 0, (
            f"{len(refused)} of {len(movers)} readers resuming at once were answered "
            f"{refused[0].errors[0]} although Redis was up: such a reader stays connected "
            "and receives nothing"
        )
        truth = await watch.settle()
    watch.every_write_acknowledged(truth)
    watch.check(truth)
    report(
        f"reconnect storm: {len(movers)} readers resumed on the surviving process "
        f"{resumed:.2f}s after the kill, every one complete ({len(truth)} events); the "
        f"survivor's Redis connections {redis_before} -> {redis_after}"
    )
