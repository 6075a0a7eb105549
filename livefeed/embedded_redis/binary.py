"""Finding the redis-server binary, and telling whether a pid is (still) a Redis server."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from livefeed.embedded_redis.errors import EmbeddedRedisError

SERVER_NAMES = ("redis-server", "valkey-server")


def find_binary(binary: str | None) -> str:
    """The absolute path of ``binary``, or of the first Redis server on PATH."""
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


def read_version(binary: str) -> str:
    """The server's version, which also proves ``binary`` is a Redis or Valkey server."""
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


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an unreaped zombie counts as gone)."""
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


def is_server_process(pid: int, binary: str) -> bool:
    """Whether ``pid`` runs a Redis server (Redis rewrites its title to "redis-server <addr>")."""
    words = _command_line(pid).split()
    if not words:
        return False
    name = os.path.basename(words[0])
    return any(server in name for server in SERVER_NAMES) or name == os.path.basename(binary)


def process_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
    except OSError:
        return None


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
