"""Fixtures that start real things: a redis-server on a free port, livefeed under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from livefeed.app import create_app
from livefeed.services import Services, services_of
from livefeed.serving.protocols import ServingState
from livefeed.serving.server import Server, server_config
from livefeed.settings import Rate, Settings
from tests.helpers import (
    TIMEOUT,
    Loopback,
    free_port,
    start_redis,
    started,
    stop_process,
    wait_for,
)

TOKEN = "test-editor-token"


@dataclass
class RedisServer:
    """A private redis-server process, stopped by PID."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--save", "", "--appendonly", "yes" if self.appendonly else "no"]
        self.process = start_redis(self.port, self.data_dir, *options, "--appendfsync", "everysec")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with started(RedisServer(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests share one Redis without flushing it."""
    return f"t{secrets.token_hex(4)}:"


def settings_for(redis_url: str, prefix: str) -> Settings:
    """A test server's settings: the given Redis and key prefix, quick drains, lax limits."""
    return Settings(
        port=0,
        redis_url=redis_url,
        redis_prefix=prefix,
        editor_token=TOKEN,
        comment_rate=Rate(1000, 60),
        drain_seconds=0.2,
    )


@pytest.fixture
def settings(redis_server: RedisServer, prefix: str) -> Settings:
    return settings_for(redis_server.url, prefix)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "both_write_paths: run each live_server test twice, with the livefeed.frames fast path"
        " and with plain ASGI send",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_write_paths") and (
        "frames_extension" in metafunc.fixturenames
    ):
        metafunc.parametrize(
            "frames_extension", [True, False], ids=["frames", "asgi-send"], indirect=True
        )


@pytest.fixture
def frames_extension(request: pytest.FixtureRequest) -> bool:
    """Whether the live server offers ``livefeed.frames`` (else the transports use ASGI send)."""
    return bool(getattr(request, "param", True))


class _TestServer(Server):
    """Our server, leaving the signals to pytest (uvicorn captures them while it serves)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LiveServer(Loopback):
    """livefeed under a real uvicorn on a free loopback port, in the test's event loop."""

    def __init__(self, settings: Settings, frames: bool = True) -> None:
        self.settings = settings
        self.frames = frames
        self.port = free_port()
        self.token = settings.editor_token or ""
        self.app: Any = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def services(self) -> Services:
        return services_of(self.app)

    @property
    def serving_state(self) -> ServingState:
        """What the running server's connections share (the fan-out's frame cache)."""
        if self._server is None:
            raise RuntimeError("the server is not running")
        return self._server.serving_state

    async def start(self) -> None:
        self.app = create_app(self.settings)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = server_config(
            self.app,
            "127.0.0.1",
            self.port,
            self.settings.drain_seconds,
            frames=self.frames,
            log_level="warning",
        )
        self._server = server = _TestServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_for(lambda: server.started or self._task.done(), what="uvicorn to start")
        if self._task.done():
            self._task.result()
            raise RuntimeError("uvicorn exited during startup")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 20)
        self._server = self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=TIMEOUT)


@pytest.fixture
async def live_server(settings: Settings, frames_extension: bool) -> AsyncIterator[LiveServer]:
    server = LiveServer(settings, frames=frames_extension)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with live_server.client() as client:
        yield client


class LivefeedProcess(Loopback):
    """``python -m livefeed serve`` as a separate process; its output goes into failures."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.args = [sys.executable, "-m", "livefeed", "serve", "--port", str(self.port), *args]
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log)
        log.close()

        async def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"livefeed exited early:\n{self.output}")
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    return (await client.get(self.url + "/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            await wait_for(ready, timeout=30, what="livefeed to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- livefeed output ---\n{self.output}") from None

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None:
            return None
        code = stop_process(self.process, sig, grace=20)
        self.process = None
        return code


@pytest.fixture
def livefeed_process(tmp_path: Path) -> Iterator[Any]:
    """A factory: ``await livefeed_process(args, env)`` starts one; all are stopped at the end."""
    started: list[LivefeedProcess] = []

    async def start(
        args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> LivefeedProcess:
        proc = LivefeedProcess(args or [], env or {}, tmp_path / f"livefeed-{len(started)}.log")
        started.append(proc)
        await proc.start()
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(Exception):
            proc.stop()
