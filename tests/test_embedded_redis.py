"""The embedded Redis: a real redis-server from PATH, started, reused and stopped by PID."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from livefeed.embedded_redis import EmbeddedRedis, EmbeddedRedisError

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None and shutil.which("valkey-server") is None,
    reason="needs redis-server or valkey-server on PATH",
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 15.0 * float(os.environ.get("LIVEFEED_TEST_TIMEOUT_FACTOR", "1"))

# Starts an embedded Redis in a separate livefeed-like process, prints "OK <url>" or
# "ERR <message>", writes a key, then runs until stdin closes (or until it is killed).
LIVEFEED_PROCESS = """
import sys
from pathlib import Path
import redis
from livefeed.embedded_redis import EmbeddedRedis, EmbeddedRedisError
server = EmbeddedRedis(Path(sys.argv[1]))
try:
    url = server.start()
except EmbeddedRedisError as exc:
    print("ERR", str(exc).replace("\\n", " "), flush=True)
    sys.exit(1)
with redis.Redis.from_url(url) as client:
    client.set("headline", "written before the crash")
print("OK", url, flush=True)
sys.stdin.read()
server.stop()
"""


def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        time.sleep(0.02)


def is_running(pid: int) -> bool:
    """Whether pid is a live process (an unreaped zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state != "Z"


def server_pid(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("server")["process_id"])


class Servers:
    """What a test started, so the fixture can stop all of it by PID whatever happens."""

    def __init__(self) -> None:
        self.embedded: list[EmbeddedRedis] = []
        self.pids: list[int] = []
        self.processes: list[subprocess.Popen[str]] = []

    def new(self, data_dir: Path, binary: str | None = None) -> EmbeddedRedis:
        server = EmbeddedRedis(data_dir, binary)
        self.embedded.append(server)
        return server

    def start(self, server: EmbeddedRedis) -> tuple[str, int]:
        url = server.start()
        pid = server_pid(url)
        self.pids.append(pid)
        return url, pid

    def livefeed_process(self, data_dir: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", LIVEFEED_PROCESS, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for server in self.embedded:
            server.stop()
        for process in self.processes:
            process.kill()
            process.communicate()
        for pid in self.pids:
            if is_running(pid) and b"redis" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    try:
        yield started
    finally:
        started.close()


def aof_text(data_dir: Path) -> bytes:
    # Redis 7 keeps a manifest and numbered files in appendonlydir/; Redis 6 one appendonly.aof.
    files = [*data_dir.glob("appendonlydir/*.aof"), *data_dir.glob("appendonly.aof")]
    return b"".join(path.read_bytes() for path in files)


def test_start_serves_an_aof_persisted_redis_on_a_private_socket(
    tmp_path: Path, servers: Servers
) -> None:
    data_dir = tmp_path / ".livefeed"
    server = servers.new(data_dir)

    url, pid = servers.start(server)

    assert url == f"unix://{data_dir}/redis.sock"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "redis.sock").stat().st_mode) == 0o700
    # In its own session, so a Ctrl-C in livefeed's terminal does not reach Redis.
    assert os.getsid(pid) != os.getsid(0)
    assert f"pid {pid}" in server.description
    assert "redis.sock" in server.description and str(data_dir) in server.description
    with redis.Redis.from_url(url) as client:
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("dir") == {"dir": str(data_dir)}
        client.set("headline", "Markets open higher")
    wait_for(lambda: b"Markets open higher" in aof_text(data_dir))

    server.stop()

    assert not is_running(pid)
    assert not (data_dir / "livefeed-redis.json").exists()
    assert not (data_dir / "redis.sock").exists()
    server.stop()  # idempotent


def test_data_survives_a_restart(tmp_path: Path, servers: Servers) -> None:
    first = servers.new(tmp_path)
    url, first_pid = servers.start(first)
    with redis.Redis.from_url(url) as client:
        client.set("headline", "Election results are in")
    first.stop()

    url, second_pid = servers.start(servers.new(tmp_path))

    assert second_pid != first_pid
    with redis.Redis.from_url(url) as client:
        assert client.get("headline") == b"Election results are in"


def test_reuses_the_redis_left_running_by_a_killed_livefeed(
    tmp_path: Path, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    crashed = servers.livefeed_process(tmp_path)
    assert crashed.stdout is not None
    status, url = crashed.stdout.readline().split(maxsplit=1)
    assert status == "OK", url
    url = url.strip()
    orphan_pid = server_pid(url)
    servers.pids.append(orphan_pid)
    crashed.kill()  # SIGKILL: livefeed gets no chance to stop its Redis
    crashed.wait()
    assert is_running(orphan_pid)

    server = servers.new(tmp_path)
    with caplog.at_level(logging.WARNING, logger="livefeed.redis"):
        reused_url, reused_pid = servers.start(server)

    assert (reused_url, reused_pid) == (url, orphan_pid)
    assert f"reusing embedded Redis pid {orphan_pid}" in caplog.text
    with redis.Redis.from_url(reused_url) as client:
        assert client.get("headline") == b"written before the crash"
    record = json.loads((tmp_path / "livefeed-redis.json").read_text())
    assert record["pid"] == orphan_pid and record["livefeed_pid"] == os.getpid()

    server.stop()

    wait_for(lambda: not is_running(orphan_pid))


def test_a_second_livefeed_on_the_same_data_dir_is_refused(
    tmp_path: Path, servers: Servers
) -> None:
    url, pid = servers.start(servers.new(tmp_path))
    second = servers.new(tmp_path)

    with pytest.raises(EmbeddedRedisError) as raised:
        second.start()

    assert f"livefeed pid {os.getpid()}" in str(raised.value)
    assert f"LIVEFEED_REDIS_URL={url}" in str(raised.value)
    assert server_pid(url) == pid
    second.stop()  # not started: stops nothing
    assert server_pid(url) == pid


def test_two_livefeeds_starting_at_once_start_one_redis(tmp_path: Path, servers: Servers) -> None:
    processes = [servers.livefeed_process(tmp_path) for _ in range(2)]

    lines = []
    for process in processes:
        assert process.stdout is not None
        lines.append(process.stdout.readline())

    oks = [line for line in lines if line.startswith("OK ")]
    errors = [line for line in lines if line.startswith("ERR ")]
    assert len(oks) == 1 and len(errors) == 1, lines
    url = oks[0].split()[1]
    pid = server_pid(url)
    servers.pids.append(pid)
    assert "is in use by livefeed pid" in errors[0]
    winner = processes[lines.index(oks[0])]
    winner.communicate(input="")  # closing stdin lets it stop its Redis
    assert winner.returncode == 0
    assert not is_running(pid)


def test_stale_record_of_a_dead_process_is_replaced(tmp_path: Path, servers: Servers) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = {
        "pid": finished.pid,
        "url": f"unix://{tmp_path}/redis.sock",
        "binary": shutil.which("redis-server"),
        "livefeed_pid": finished.pid,
    }
    (tmp_path / "livefeed-redis.json").write_text(json.dumps(stale))
    (tmp_path / "redis.sock").write_text("left over from a crash")

    url, pid = servers.start(servers.new(tmp_path))

    assert pid != finished.pid
    with redis.Redis.from_url(url) as client:
        assert client.ping()
    assert json.loads((tmp_path / "livefeed-redis.json").read_text())["pid"] == pid


def test_stale_record_naming_another_program_leaves_it_alone(
    tmp_path: Path, servers: Servers
) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        stale = {
            "pid": bystander.pid,
            "url": f"unix://{tmp_path}/redis.sock",
            "binary": "redis-server",
            "livefeed_pid": bystander.pid,
        }
        (tmp_path / "livefeed-redis.json").write_text(json.dumps(stale))
        server = servers.new(tmp_path)

        _, pid = servers.start(server)
        server.stop()

        assert pid != bystander.pid
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# A data dir too long for a unix socket: tests/security/test_embedded_redis_socket.py.


def test_missing_binary_says_what_to_install(tmp_path: Path, servers: Servers) -> None:
    server = servers.new(tmp_path, binary="/nonexistent/redis-server")

    with pytest.raises(EmbeddedRedisError) as raised:
        server.start()

    message = str(raised.value)
    assert "/nonexistent/redis-server" in message
    assert "apt-get install redis-server" in message
    assert "LIVEFEED_REDIS_URL" in message and "LIVEFEED_REDIS_SERVER" in message


def test_server_that_exits_at_once_reports_its_output(tmp_path: Path, servers: Servers) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "Redis server v=7.9.9 sha=0"; exit 0; fi\n'
        'echo "*** FATAL CONFIG FILE ERROR: pretend" >&2\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    server = servers.new(tmp_path / "data", binary=str(fake))

    with pytest.raises(EmbeddedRedisError) as raised:
        server.start()

    assert "exited before answering PING" in str(raised.value)
    assert "FATAL CONFIG FILE ERROR: pretend" in str(raised.value)
    assert not (tmp_path / "data" / "livefeed-redis.json").exists()


def test_context_manager_yields_the_url_and_stops_on_exit(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as url, redis.Redis.from_url(url) as client:
        assert client.ping()
        pid = server_pid(url)

    assert not is_running(pid)
