"""One redis-server process: spawned or adopted, health-checked with PING, and stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from livefeed.embedded_redis.binary import is_running, is_server_process
from livefeed.embedded_redis.config import write_config
from livefeed.embedded_redis.errors import EmbeddedRedisError
from livefeed.embedded_redis.resp import ConnectionClosed, Endpoint, ReplyError, call

log = logging.getLogger("livefeed.redis")

START_TIMEOUT = 30.0  # loading a large AOF takes a while; -LOADING answers count as progress
STOP_TIMEOUT = 10.0  # SHUTDOWN fsyncs the AOF; after this long we SIGKILL
KILL_TIMEOUT = 5.0
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 20


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """A redis-server we started (``child`` set) or adopted from a livefeed that died.

    Only a pid we started or verified is ever signalled; an adopted one is checked again
    before each signal, as it may have exited and its pid been reused.
    """

    binary: str
    version: str
    endpoint: Endpoint
    pid: int
    log_path: Path
    child: subprocess.Popen[bytes] | None = None

    def is_alive(self) -> bool:
        if self.child is not None:
            return self.child.poll() is None
        return is_running(self.pid)

    def wait_until_ready(self, log_offset: int | None) -> None:
        """Return once it answers PING; raise with the end of its log if it exits or stalls."""
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while True:
            if not self.is_alive():
                raise EmbeddedRedisError(
                    f"{self.binary} exited before answering PING; end of {self.log_path}:\n"
                    + self.log_tail(log_offset)
                )
            try:
                reply = call(self.endpoint, "PING")
                if reply == "PONG":
                    return
                last = repr(reply)
            except (OSError, ReplyError) as exc:
                last = str(exc)  # not listening yet, or LOADING the AOF
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"{self.binary} (pid {self.pid}) did not answer PING at "
                    f"{self.endpoint.url} within {START_TIMEOUT:.0f} s (last: {last}); "
                    f"end of {self.log_path}:\n" + self.log_tail(log_offset)
                )
            time.sleep(POLL_INTERVAL)

    def log_tail(self, offset: int | None) -> str:
        """The last lines of redis.log written since ``offset`` (None: its end), indented."""
        try:
            with self.log_path.open("rb") as log_file:
                size = log_file.seek(0, os.SEEK_END)
                log_file.seek(offset if offset is not None else max(0, size - 8192))
                text = log_file.read().decode(errors="replace")
        except OSError as exc:
            return f"    (no log: {exc})"
        lines = text.splitlines()[-LOG_TAIL_LINES:] or ["(empty)"]
        return "\n".join("    " + line for line in lines)

    def shut_down(self) -> None:
        """SHUTDOWN (or SIGTERM), then SIGKILL only if it has not exited in STOP_TIMEOUT."""
        if not self.is_alive():
            return
        if not self._ask_to_shut_down():
            self._signal(signal.SIGTERM)
        if self._wait_for_exit(STOP_TIMEOUT):
            return
        log.warning(
            "embedded Redis pid %s did not exit within %.0f s; killing it", self.pid, STOP_TIMEOUT
        )
        self._signal(signal.SIGKILL)
        if not self._wait_for_exit(KILL_TIMEOUT):
            raise EmbeddedRedisError(f"could not stop embedded Redis pid {self.pid}")

    def _ask_to_shut_down(self) -> bool:
        try:
            call(self.endpoint, "SHUTDOWN")
        except ConnectionClosed:
            return True  # Redis closes the connection as it exits
        except (OSError, ReplyError) as exc:
            log.debug("SHUTDOWN at %s failed (%s); sending SIGTERM", self.endpoint.url, exc)
        return False

    def _signal(self, sig: signal.Signals) -> None:
        if self.child is not None:
            self.child.send_signal(sig)  # a no-op once the child has been reaped
            return
        # The adopted server may have exited and its pid been reused: check before signalling.
        if is_running(self.pid) and is_server_process(self.pid, self.binary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _wait_for_exit(self, timeout: float) -> bool:
        if self.child is not None:
            try:
                self.child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True


def spawn(binary: str, version: str, endpoint: Endpoint, data_dir: Path) -> ServerProcess:
    """Write redis.conf for ``endpoint`` and start ``binary`` on it; not yet ready."""
    if endpoint.unix_path is None:
        raise RuntimeError("the embedded Redis listens on a unix socket only")
    conf_path, log_path = data_dir / "redis.conf", data_dir / "redis.log"
    write_config(conf_path, data_dir, log_path, endpoint.unix_path)
    Path(endpoint.unix_path).unlink(missing_ok=True)
    # Redis only opens its logfile after parsing the config, so config errors go to stderr:
    # send both to redis.log so every failure is in one place.
    with log_path.open("ab") as log_file:
        try:
            child = subprocess.Popen(
                [binary, str(conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                start_new_session=True,  # a Ctrl-C must not kill Redis before livefeed is done
            )
        except OSError as exc:
            raise EmbeddedRedisError(f"could not run {binary}: {exc}") from exc
    return ServerProcess(binary, version, endpoint, child.pid, log_path, child)
