"""Fixtures of the fault-injection suite: a Redis of the test's own to kill, flush and
restart, livefeed on it, and livefeed behind a proxy that can cut or silence its Redis
connections. The tools the tests use around their faults are in ``toolkit.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from livefeed.settings import Settings
from tests.conftest import LiveServer, RedisServer
from tests.helpers import running, started
from tests.reliability.fault_proxy import FaultProxy


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own to kill, flush and restart (AOF on, appendfsync everysec)."""
    with started(RedisServer(tmp_path / "redis", appendonly=True)) as server:
        yield server


@pytest.fixture
def own_settings(settings: Settings, own_redis: RedisServer) -> Settings:
    return settings.with_(redis_url=own_redis.url)


@pytest.fixture
async def own_server(own_settings: Settings) -> AsyncIterator[LiveServer]:
    """livefeed in this test's loop, on the test's own Redis."""
    async with running(LiveServer(own_settings)) as server:
        yield server


@pytest.fixture
async def proxy(own_redis: RedisServer) -> AsyncIterator[FaultProxy]:
    """A proxy in front of the test's own Redis that can cut or silence connections."""
    async with running(FaultProxy(own_redis.port)) as proxy:
        yield proxy


@pytest.fixture
async def proxied_server(settings: Settings, proxy: FaultProxy) -> AsyncIterator[LiveServer]:
    """livefeed whose every Redis connection (commands and pub/sub) goes through the proxy."""
    async with running(LiveServer(settings.with_(redis_url=proxy.url))) as server:
        yield server
