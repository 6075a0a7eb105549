"""``livefeed serve --workers N``: the supervisor starts, restarts, gives up and stops cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from livefeed.serving import workers
from livefeed.settings import Settings
from tests.conftest import LivefeedProcess, RedisServer
from tests.helpers import FACTOR, free_port, wait_for

TOKEN = "workers-token"
# Three failed starts of a worker with their back-off (1 s, 2 s), and the spawns, fit well.
GIVE_UP_WITHIN = 30.0 * FACTOR


def serve(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``livefeed serve --workers 2 ...`` to its end, which must come within GIVE_UP_WITHIN."""
    return subprocess.run(
        [sys.executable, "-m", "livefeed", "serve", "--workers", "2", *args],
        capture_output=True,
        text=True,
        timeout=GIVE_UP_WITHIN,
        env={**os.environ, "LIVEFEED_EDITOR_TOKEN": TOKEN, "LIVEFEED_DATA_DIR": str(tmp_path)},
    )


def _workers_of(pid: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(FileNotFoundError):  # one that is just being reaped
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def _is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_workers_that_cannot_reach_redis_end_the_supervisor_non_zero(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    result = serve(
        "--port", str(port), "--redis-url", f"redis://127.0.0.1:{free_port()}", tmp_path=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "could not start" in result.stderr
    assert f"{workers.START_ATTEMPTS} times in a row" in result.stderr
    assert time.monotonic() - started < GIVE_UP_WITHIN
    with socket.socket() as sock:  # no worker is left holding the port
        sock.bind(("127.0.0.1", port))


def test_serve_with_workers_on_a_taken_port_fails_at_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--port", str(port), "--redis-url", redis_server.url, tmp_path=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "started worker" not in result.stderr


@pytest.fixture
async def two_workers(
    livefeed_process: Any, redis_server: RedisServer, prefix: str
) -> LivefeedProcess:
    """``livefeed serve --workers 2`` on the test Redis, ready to answer."""
    settings = Settings(
        redis_url=redis_server.url, redis_prefix=prefix, editor_token=TOKEN, drain_seconds=0.2
    )
    server: LivefeedProcess = await livefeed_process(["--workers", "2"], settings.to_env())
    return server


async def test_two_workers_serve_and_a_sigterm_stops_them_with_exit_0(
    two_workers: LivefeedProcess,
) -> None:
    server = two_workers
    supervisor = server.process.pid
    await wait_for(lambda: len(_workers_of(supervisor)) == 2, what="two workers")
    children = _workers_of(supervisor)
    async with httpx.AsyncClient(base_url=server.url) as api:
        assert (await api.get("/api/briefs")).status_code == 200
    assert server.stop(signal.SIGTERM) == 0, server.output
    assert all(_is_gone(pid) for pid in children)
    assert "could not start" not in server.output


async def test_a_worker_that_dies_after_serving_is_started_again(
    two_workers: LivefeedProcess,
) -> None:
    server = two_workers
    supervisor = server.process.pid

    def serving() -> int:
        return server.output.count(" is serving")

    await wait_for(lambda: serving() == 2, timeout=30 * FACTOR, what="both workers serving")
    crashed = _workers_of(supervisor)[0]
    os.kill(crashed, signal.SIGKILL)
    await wait_for(lambda: serving() == 3, timeout=30 * FACTOR, what="a third one serving")
    assert crashed not in _workers_of(supervisor)
    assert len(_workers_of(supervisor)) == 2
    assert f"worker pid {crashed} exited (-9); restarting it" in server.output
    async with httpx.AsyncClient(base_url=server.url) as api:
        for _ in range(4):  # whichever worker takes it
            response = await api.get("/readyz", headers={"Connection": "close"})
            assert response.status_code == 200
    assert server.stop(signal.SIGTERM) == 0, server.output


@pytest.mark.parametrize(("failures", "delay"), [(0, 0.5), (1, 1.0), (2, 2.0), (10, 8.0)])
def test_restarts_back_off_and_are_capped(failures: int, delay: float) -> None:
    assert workers.restart_delay(failures) == delay


def test_each_worker_is_scraped_on_its_own_metrics_port() -> None:
    settings = Settings(metrics_port=9100, workers=3)
    ports = [workers.worker_settings(settings, i).metrics_port for i in range(3)]
    assert ports == [9100, 9101, 9102]
    assert workers.worker_settings(Settings(), 2).metrics_port is None
