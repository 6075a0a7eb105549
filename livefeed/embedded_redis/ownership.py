"""Who owns a data dir: its lock, and the record of the Redis running there, for reuse.

``livefeed-redis.lock`` is held with an exclusive flock by the one livefeed using the data
dir; ``livefeed-redis.json`` names the Redis it runs (pid, url, binary, livefeed pid), so a
later livefeed can find it and, after a crash, verify it is ours and reuse it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from livefeed.embedded_redis.binary import is_running, is_server_process, process_cwd
from livefeed.embedded_redis.config import SOCKET_NAME, write_atomically
from livefeed.embedded_redis.errors import EmbeddedRedisError
from livefeed.embedded_redis.process import POLL_INTERVAL, START_TIMEOUT, ServerProcess
from livefeed.embedded_redis.resp import Endpoint, ReplyError, call

log = logging.getLogger("livefeed.redis")

RECORD_FILE = "livefeed-redis.json"
LOCK_FILE = "livefeed-redis.lock"


@dataclass(frozen=True, slots=True)
class Record:
    """The contents of livefeed-redis.json."""

    pid: int
    url: str
    binary: str
    livefeed_pid: int


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded Redis a running ``livefeed serve`` keeps in ``data_dir``."""
    try:
        data = json.loads((Path(data_dir) / RECORD_FILE).read_text())
        return str(data["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_record(data_dir: Path) -> Record | None:
    path = data_dir / RECORD_FILE
    try:
        data = json.loads(path.read_text())
        return Record(
            int(data["pid"]), str(data["url"]), str(data["binary"]), int(data["livefeed_pid"])
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def write_record(data_dir: Path, server: ServerProcess) -> None:
    record = {
        "pid": server.pid,
        "url": server.endpoint.url,
        "binary": server.binary,
        "livefeed_pid": os.getpid(),
    }
    write_atomically(data_dir / RECORD_FILE, json.dumps(record) + "\n")


def forget_record(data_dir: Path) -> None:
    (data_dir / RECORD_FILE).unlink(missing_ok=True)


def recorded_server(data_dir: Path) -> Record | None:
    """The server named in livefeed-redis.json if it is verifiably ours; else clean up."""
    if not (data_dir / RECORD_FILE).exists():
        return None
    record = read_record(data_dir)
    if record is not None and _is_ours(record, data_dir):
        return record
    forget_record(data_dir)
    (data_dir / SOCKET_NAME).unlink(missing_ok=True)
    return None


def _is_ours(record: Record, data_dir: Path) -> bool:
    if not is_running(record.pid):
        return False
    if not is_server_process(record.pid, record.binary):
        log.warning(
            "pid %d in %s is not a Redis server now; leaving it alone",
            record.pid,
            data_dir / RECORD_FILE,
        )
        return False
    try:
        reply = call(Endpoint.from_url(record.url), "CONFIG", "GET", "dir")
    except (OSError, ValueError, ReplyError) as exc:
        # A Redis whose cwd is our data dir is ours even if it does not answer; starting a
        # second server would have two processes appending to one AOF.
        if process_cwd(record.pid) == data_dir:
            raise EmbeddedRedisError(
                f"Redis pid {record.pid} is running in {data_dir} but does not answer "
                f"at {record.url} ({exc}); stop it (kill {record.pid}) and start again"
            ) from exc
        return False
    return (
        isinstance(reply, list)
        and len(reply) == 2
        and isinstance(reply[1], str)
        and Path(reply[1]).resolve() == data_dir
    )


class DataDirLock:
    """The exclusive lock one livefeed holds on a data dir from start to stop.

    The kernel drops it when livefeed dies, so a crash never leaves the data dir locked.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, waiting for a livefeed that is starting; fail if one is running."""
        fd = os.open(self._data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Either another livefeed runs on this data dir, or one is starting right now.
                record = read_record(self._data_dir)
                running = record is not None and is_running(record.livefeed_pid)
                if running or time.monotonic() > deadline:
                    os.close(fd)
                    raise EmbeddedRedisError(self._in_use_message(record)) from None
                time.sleep(POLL_INTERVAL)
            else:
                self._fd = fd
                return

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def _in_use_message(self, record: Record | None) -> str:
        if record is None:
            return (
                f"another livefeed is starting Redis in {self._data_dir}; "
                "try again, or use another --data-dir"
            )
        return (
            f"{self._data_dir} is in use by livefeed pid {record.livefeed_pid} (Redis at "
            f"{record.url}); stop that livefeed, use another --data-dir, or share its Redis "
            f"with LIVEFEED_REDIS_URL={record.url}"
        )
