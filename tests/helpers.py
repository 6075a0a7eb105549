"""Test helpers: waiting on conditions (never fixed sleeps), WebSocket frames, scaled time;
starting and stopping what a test runs (servers, Redis processes, background loops)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import redis
import websockets

# Slow machines (CI under load) scale every test timeout with LIVEFEED_TEST_TIMEOUT_FACTOR.
FACTOR = float(os.environ.get("LIVEFEED_TEST_TIMEOUT_FACTOR", "1"))
TIMEOUT = 5.0 * FACTOR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = TIMEOUT,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def recv_json(ws: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next frame from a ``websockets`` client, parsed."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    frame: dict[str, Any] = json.loads(raw)
    return frame


async def subscribe(ws: Any, topic: str, since: str | None = None) -> list[dict[str, Any]]:
    """Subscribe and return the frames received up to and including ``subscribed``."""
    frame: dict[str, Any] = {"type": "subscribe", "topic": topic}
    if since is not None:
        frame["since"] = since
    await ws.send(json.dumps(frame))
    frames = []
    while True:
        got = await recv_json(ws)
        frames.append(got)
        if got.get("type") == "subscribed" and got.get("topic") == topic:
            return frames


async def expect_silence(ws: Any, seconds: float = 0.3) -> None:
    """Assert that no frame arrives within ``seconds``."""
    try:
        raw = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"expected no frame, got {raw!r}")


async def connect_without_reading(port: int) -> Any:
    """A WebSocket reader on ``port`` with a tiny receive buffer, that will never read: a
    slow reader as the server sees one."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await websockets.connect(
        f"ws://127.0.0.1:{port}/ws", sock=sock, max_queue=1, open_timeout=TIMEOUT
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- things a test starts and must stop -----------------------------------------------


class _Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class _AsyncStartable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Startable)
A = TypeVar("A", bound=_AsyncStartable)


@contextlib.contextmanager
def started(thing: S) -> Iterator[S]:
    """``thing`` started, and stopped on the way out — also when it failed half-way up."""
    try:
        thing.start()
        yield thing
    finally:
        thing.stop()


@contextlib.asynccontextmanager
async def running(thing: A) -> AsyncIterator[A]:
    """``thing`` started in this loop, and stopped on the way out."""
    await thing.start()
    try:
        yield thing
    finally:
        await thing.stop()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it to end; an exception it died of is raised here."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Background:
    """A loop a test runs beside its work (``run``), or ``async with`` it: ``stop()`` cancels
    and awaits it, so an exception it died of fails the test."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class Loopback:
    """Something serving livefeed on a loopback ``port``."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"


def livefeed_env(redis_url: str, prefix: str, token: str, **settings: object) -> dict[str, str]:
    """The environment of a ``livefeed serve`` process on ``redis_url`` under ``prefix``,
    more settings by name (``max_connections_per_ip=1000``) as their LIVEFEED_* variables."""
    env = {
        "LIVEFEED_REDIS_URL": redis_url,
        "LIVEFEED_REDIS_PREFIX": prefix,
        "LIVEFEED_EDITOR_TOKEN": token,
    }
    env.update({f"LIVEFEED_{name.upper()}": str(value) for name, value in settings.items()})
    return env


# -- processes -------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], object],
    what: str,
    timeout: float = 10.0,
    ignore: tuple[type[Exception], ...] = (),
) -> None:
    """``wait_for`` for code outside the event loop (starting servers): poll ``condition``,
    taking the exceptions in ``ignore`` for "not yet"."""
    deadline = time.monotonic() + timeout * FACTOR
    while True:
        try:
            if condition():
                return
        except ignore:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * FACTOR:.1f}s waiting for {what}")
        time.sleep(0.05)


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 10.0
) -> int:
    """Send ``sig`` to ``process`` if it still runs, SIGKILL it after ``grace`` seconds; its
    exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start_redis(
    port: int, directory: Path, *options: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``redis-server *options`` (or valkey-server) in the foreground on loopback ``port``,
    working in ``directory``, once it answers PING; its output goes to ``log``."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise RuntimeError("tests need redis-server (or valkey-server) on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    command = [binary, *options, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--dir", str(directory), "--daemonize", "no", "--loglevel", "warning"]
    log = log or directory / "redis.log"
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server on {port} exited:\n{log.read_text(errors='replace')}")
        with redis.Redis(port=port, socket_connect_timeout=0.2) as client:
            return bool(client.ping())

    try:
        wait_until(answers, f"redis-server on {port} to start", ignore=(redis.RedisError,))
    except BaseException:
        stop_process(process, signal.SIGKILL)
        raise
    return process


_PUBLISH_BRIEFS = """
import asyncio, sys
from livefeed.events import BRIEF_PUBLISHED, BRIEFS
from livefeed.storage.connect import connect
from livefeed.storage.eventlog import EventLog
from livefeed.storage.keys import Keys

async def main(url, prefix, count):
    redis = connect(url)
    log = EventLog(redis, Keys(prefix), 1000, sharded=False)
    for n in range(count):
        await log.append(BRIEFS, BRIEF_PUBLISHED, {"id": f"busy{n}", "text": str(n)})
    await redis.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def publish_while_busy(redis_url: str, prefix: str, count: int) -> None:
    """Publish ``count`` briefs (texts "0", "1", ...) from another process, blocking this
    one's event loop until they are all in: an in-process server is busy meanwhile, and
    finds them all waiting on its pub/sub connection when it gets back to it."""
    subprocess.run(
        [sys.executable, "-c", _PUBLISH_BRIEFS, redis_url, prefix, str(count)],
        check=True,
        timeout=30,
    )
