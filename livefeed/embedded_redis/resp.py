"""Where the embedded Redis listens, and a few words of RESP to talk to it.

Enough for PING, CONFIG GET and SHUTDOWN without a client library, so starting, checking
and stopping the server needs nothing but the standard library.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias
from urllib.parse import quote, unquote

PROBE_TIMEOUT = 2.0

Reply: TypeAlias = "str | int | list[Reply] | None"


class ReplyError(Exception):
    """An error reply from Redis, such as ``LOADING ...``."""


class ConnectionClosed(ConnectionError):
    """Redis closed the connection without answering (what a successful SHUTDOWN does)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
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
    def from_url(cls, url: str) -> Endpoint:
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


def call(endpoint: Endpoint, *args: str, timeout: float = PROBE_TIMEOUT) -> Reply:
    """Send one command and read its reply; ``ReplyError`` for an error reply."""
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


def _read_reply(stream: BinaryIO) -> Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionClosed("Redis closed the connection")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise ReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        if int(body) < 0:
            return None
        data = stream.read(int(body) + 2)
        if len(data) != int(body) + 2:
            raise ConnectionClosed("Redis closed the connection")
        return os.fsdecode(data[:-2])
    if kind == b"*":
        return None if int(body) < 0 else [_read_reply(stream) for _ in range(int(body))]
    raise ConnectionError(f"not a RESP reply: {line!r}")
