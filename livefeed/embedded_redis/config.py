"""The embedded Redis's configuration: where it listens and how it persists.

Always a unix socket of mode 0700, never TCP: a loopback port without a password is open
to every local user.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from livefeed.embedded_redis.errors import EmbeddedRedisError
from livefeed.embedded_redis.resp import Endpoint

log = logging.getLogger("livefeed.redis")

# sun_path is 104 bytes on macOS and 108 on Linux; the smaller limit keeps a data dir portable.
UNIX_PATH_MAX = 104
PRIVATE_DIR_PREFIX = "livefeed-redis-"
SOCKET_NAME = "redis.sock"


def choose_endpoint(data_dir: Path) -> Endpoint:
    """``<data_dir>/redis.sock``, or the same name in a private directory if that is too long."""
    socket_path = str(data_dir / SOCKET_NAME)
    if len(os.fsencode(socket_path)) < UNIX_PATH_MAX:
        return Endpoint(unix_path=socket_path)
    private = _private_socket_dir()
    log.info("%s is too long for a unix socket; using %s", socket_path, private)
    return Endpoint(unix_path=str(private / SOCKET_NAME))


def remove_private_socket_dir(endpoint: Endpoint, data_dir: Path) -> None:
    """Remove the private directory ``choose_endpoint`` made for the socket, if it made one."""
    if endpoint.unix_path is None:
        return
    socket_dir = Path(endpoint.unix_path).parent
    if socket_dir.name.startswith(PRIVATE_DIR_PREFIX) and socket_dir != data_dir:
        shutil.rmtree(socket_dir, ignore_errors=True)


def _private_socket_dir() -> Path:
    """A new directory only we can enter (mkdtemp: mode 0700), short enough for a socket."""
    bases = [os.environ.get("XDG_RUNTIME_DIR", ""), tempfile.gettempdir(), "/tmp"]
    room = UNIX_PATH_MAX - len(f"/{PRIVATE_DIR_PREFIX}xxxxxxxx/{SOCKET_NAME}") - 1
    for base in bases:
        if base and os.path.isdir(base) and len(os.fsencode(base)) <= room:
            return Path(tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX, dir=base))
    raise EmbeddedRedisError(
        "the data dir's path is too long for Redis's unix socket and no short private directory"
        " could be made for it: use a shorter --data-dir (or give a --redis-url)"
    )


def write_config(conf_path: Path, data_dir: Path, log_path: Path, socket_path: str) -> None:
    """Write ``redis.conf``: AOF fsynced every second, the unix socket only, no TCP port."""
    settings = [
        ("daemonize", "no"),
        ("dir", str(data_dir)),
        ("pidfile", str(data_dir / "redis.pid")),
        ("logfile", str(log_path)),
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("save", ""),  # AOF only: no RDB snapshots
        ("protected-mode", "yes"),
        ("port", "0"),
        ("unixsocket", socket_path),
        ("unixsocketperm", "700"),
    ]
    lines = ["# Written by livefeed at every start of its embedded Redis; edits are lost."]
    lines += [f"{name} {_quote(value)}" for name, value in settings]
    write_atomically(conf_path, "\n".join(lines) + "\n")


def _quote(value: str) -> str:
    """A redis.conf string: double-quoted, so paths with spaces or quotes survive."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
        file.write(text)
    os.replace(temporary, path)
