"""Stopping always ends: within the drain window plus a few seconds, whatever the readers,
the ingest consumer or Redis are doing at that moment (an orchestrator SIGKILLs a process
that takes longer, and a hung stop once cost a test run 20 s)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

import websockets

from livefeed import limits
from livefeed.settings import Settings
from tests.conftest import LiveServer, RedisServer
from tests.helpers import FACTOR, subscribe
from tests.reliability.toolkit import Publisher

READERS = 10
# The drain window, then at most one SHUTDOWN_STEP per remaining step; 2 s of slack for a
# loaded machine. Generous on purpose: a hang is unbounded, not a second late.
STEPS = 5


def _bound(settings: Settings) -> float:
    return (settings.drain_seconds + 2.0 + STEPS * limits.SHUTDOWN_STEP) * FACTOR


@contextlib.asynccontextmanager
async def _busy(server: LiveServer) -> AsyncIterator[Publisher]:
    """Readers following briefs while a publisher posts: a server in the middle of work."""
    readers = [await websockets.connect(server.ws_url) for _ in range(READERS)]
    try:
        for ws in readers:
            await subscribe(ws, "briefs")
        publisher = Publisher(server.url, server.token, rate=40.0)
        publisher.start(seconds=30.0)
        try:
            yield publisher
        finally:
            # Requests sent as the server went away are the publisher's business, not ours.
            await publisher.cancel()
    finally:
        for ws in readers:
            try:
                await asyncio.wait_for(ws.close(), 1.0)
            except (TimeoutError, OSError, websockets.ConnectionClosed):
                ws.transport.abort()


async def _timed_stop(server: LiveServer) -> float:
    started = time.monotonic()
    await server.stop()
    return time.monotonic() - started


async def test_stopping_a_busy_server_ends_in_bounded_time_every_time(
    own_settings: Settings,
) -> None:
    durations = []
    for _ in range(20):
        server = LiveServer(own_settings)
        await server.start()
        async with _busy(server) as publisher:
            await asyncio.sleep(0.2)
            durations.append(await _timed_stop(server))
        assert publisher.acknowledged, "the publisher never got a brief through"
    assert max(durations) < _bound(own_settings), durations


async def test_stopping_with_redis_paused_ends_in_bounded_time(
    own_settings: Settings, own_redis: RedisServer
) -> None:
    assert own_redis.process is not None
    for _ in range(3):
        server = LiveServer(own_settings)
        await server.start()
        try:
            async with _busy(server):
                await asyncio.sleep(0.2)
                own_redis.process.send_signal(signal.SIGSTOP)
                try:
                    took = await _timed_stop(server)
                finally:
                    own_redis.process.send_signal(signal.SIGCONT)
        finally:
            await server.stop()  # a no-op once stopped; stops it if the assertion failed
        assert took < _bound(own_settings), f"stop took {took:.1f} s with Redis paused"
