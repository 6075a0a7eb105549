"""``EmbeddedRedis``: start or reuse livefeed's own redis-server, and stop it."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import TracebackType

from livefeed.embedded_redis.binary import find_binary, read_version
from livefeed.embedded_redis.config import choose_endpoint, remove_private_socket_dir
from livefeed.embedded_redis.errors import EmbeddedRedisError
from livefeed.embedded_redis.ownership import (
    DataDirLock,
    Record,
    forget_record,
    recorded_server,
    write_record,
)
from livefeed.embedded_redis.process import ServerProcess, spawn
from livefeed.embedded_redis.resp import Endpoint

log = logging.getLogger("livefeed.redis")


class EmbeddedRedis:
    """A redis-server process of our own, persisting to ``data_dir`` with AOF (fsync every second).

    ``start()`` returns the URL to connect to. It listens on ``<data_dir>/redis.sock`` (mode 0700,
    no TCP); when that path is too long for a unix socket, on ``redis.sock`` in a private
    directory of its own (mode 0700, made under ``$XDG_RUNTIME_DIR`` or the temp dir, removed at
    stop). Never on TCP: a loopback port without a password is open to every local user.

    One livefeed owns one data dir: an exclusive lock on ``livefeed-redis.lock`` is held from
    ``start()`` to ``stop()``, so a second livefeed on the same data dir fails with a message naming
    the running Redis instead of starting a second server on the same AOF. The kernel drops the lock
    when livefeed dies; if its Redis survived (it runs in its own session so a Ctrl-C does not kill
    it first), the next ``start()`` verifies that process is our Redis and reuses it. Only a pid we
    started or verified is ever signalled.
    """

    def __init__(self, data_dir: Path, binary: str | None = None) -> None:
        self._data_dir = Path(data_dir).expanduser().resolve()
        self._requested_binary = binary
        self._lock = DataDirLock(self._data_dir)
        self._server: ServerProcess | None = None

    @property
    def description(self) -> str:
        """Which Redis this is, for the startup log."""
        server = self._server
        if server is None:
            return f"embedded Redis (not running), data in {self._data_dir}"
        return (
            f"embedded {Path(server.binary).name} {server.version} ({server.binary}), "
            f"pid {server.pid}, {server.endpoint.url}, data in {self._data_dir}"
        )

    def start(self) -> str:
        """Start (or reuse) the server, wait until it answers PING, and return its URL."""
        if self._server is not None:
            raise RuntimeError("EmbeddedRedis.start() called twice; call stop() first")
        self._data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            record = recorded_server(self._data_dir)
            server = self._adopt(record) if record is not None else self._launch()
        except BaseException:
            # Leave a server we adopted but could not use running: it is not known to be broken.
            self._server = None
            self._lock.release()
            raise
        log.info("using %s", self.description)
        return server.endpoint.url

    def stop(self) -> None:
        """Shut the server down (the AOF is fsynced), wait for it to exit; safe to call twice."""
        server = self._server
        if server is None:
            self._lock.release()
            return
        server.shut_down()
        self._forget(server)
        self._lock.release()
        log.info("stopped embedded Redis pid %d (%s)", server.pid, server.endpoint.url)

    def __enter__(self) -> str:
        """Start; ``with EmbeddedRedis(data_dir) as url:`` runs a block against the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _adopt(self, record: Record) -> ServerProcess:
        """Reuse a server left running by a livefeed that died."""
        log.warning("reusing embedded Redis pid %d left running by a previous livefeed", record.pid)
        version = "unknown version"
        with contextlib.suppress(EmbeddedRedisError):
            version = read_version(record.binary)
        endpoint = Endpoint.from_url(record.url)
        log_path = self._data_dir / "redis.log"
        server = ServerProcess(record.binary, version, endpoint, record.pid, log_path)
        self._server = server
        write_record(self._data_dir, server)
        server.wait_until_ready(log_offset=None)
        return server

    def _launch(self) -> ServerProcess:
        """Start a fresh server and wait until it answers."""
        binary = find_binary(self._requested_binary)
        version = read_version(binary)
        log_path = self._data_dir / "redis.log"
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        server = spawn(binary, version, choose_endpoint(self._data_dir), self._data_dir)
        self._server = server
        # Recorded before it is ready, so a livefeed killed while a large AOF loads is recoverable.
        write_record(self._data_dir, server)
        try:
            server.wait_until_ready(log_offset)
        except BaseException:
            server.shut_down()
            self._forget(server)
            raise
        return server

    def _forget(self, server: ServerProcess) -> None:
        forget_record(self._data_dir)
        remove_private_socket_dir(server.endpoint, self._data_dir)
        self._server = None
