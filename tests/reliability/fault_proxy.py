"""A loopback TCP proxy in front of Redis that can make subscriber connections go silent.

livefeed uses one Redis URL for its command connections and its pub/sub connection, so the
whole app goes through the proxy; the proxy tells them apart by what the client sends: a
connection that has sent a ``SUBSCRIBE`` (or ``SSUBSCRIBE``) command is a subscriber.
``silence`` drops everything Redis sends to subscribers (Redis believes it delivered; the
connection stays open and the client reads nothing) — the "deaf listener" failure — while
command connections keep working, so the hub's probe can be published and must notice
that it never comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

# The command name as redis-py sends it (a RESP bulk string), plain or sharded.
_SUBSCRIBE = re.compile(rb"\*\d+\r\n\$(9\r\n|10\r\nS)SUBSCRIBE\r\n")
_TAIL = 32  # bytes kept from the last read, in case a command straddles two reads


@dataclass(eq=False)
class _Pipe:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    subscriber: bool = False
    silenced: bool = False
    dropped: int = 0  # bytes from Redis thrown away
    cut_on_answer: bool = False  # close without passing on Redis's next answer
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Forwards 127.0.0.1:<port> to a Redis port; can silence subscriber connections."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self._silence_new = False
        self._cut_command: bytes | None = None
        self.connections = 0
        self.cuts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for pipe in list(self._pipes):
            await self._close(pipe)
        for writer in list(self._clients):
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        if server is not None:
            await server.wait_closed()

    def subscribers(self) -> int:
        """Open subscriber connections."""
        return sum(p.subscriber for p in self._pipes)

    def silenced(self) -> int:
        return sum(p.silenced for p in self._pipes)

    def silence(self, *, new_ones_too: bool = False) -> int:
        """Drop what Redis sends to today's subscribers (and, optionally, to later ones)."""
        self._silence_new = new_ones_too
        count = 0
        for pipe in self._pipes:
            if pipe.subscriber:
                pipe.silenced = True
                count += 1
        return count

    def cut_after(self, command: str) -> None:
        """The next time a client sends ``command``, let Redis run it, then close that
        connection without passing on the answer: the client cannot know it succeeded."""
        self._cut_command = f"${len(command)}\r\n{command}\r\n".encode()

    def heal(self) -> None:
        """Let every connection hear Redis again (what was dropped stays lost)."""
        self._silence_new = False
        for pipe in self._pipes:
            pipe.silenced = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Tracked from the first moment, so stop() closes it even mid-setup.
        self._clients.add(writer)
        try:
            if self._server is None:
                return  # accepted while stopping
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
            except OSError:
                return
            self.connections += 1
            pipe = _Pipe(writer, up_writer)
            self._pipes.add(pipe)
            pipe.tasks = [
                asyncio.create_task(self._from_client(pipe, reader)),
                asyncio.create_task(self._from_redis(pipe, up_reader)),
            ]
            await asyncio.wait(pipe.tasks, return_when=asyncio.FIRST_COMPLETED)
            await self._close(pipe)
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _from_client(self, pipe: _Pipe, reader: asyncio.StreamReader) -> None:
        tail = b""
        while data := await reader.read(65536):
            if not pipe.subscriber and _SUBSCRIBE.search(tail + data):
                pipe.subscriber = True
                pipe.silenced = self._silence_new
            if self._cut_command is not None and self._cut_command in tail + data:
                self._cut_command = None
                pipe.cut_on_answer = True
            tail = data[-_TAIL:]
            pipe.upstream.write(data)
            await pipe.upstream.drain()

    async def _from_redis(self, pipe: _Pipe, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            if pipe.cut_on_answer:
                self.cuts += 1
                return  # the pipe closes both sides; the answer is lost
            if pipe.silenced:
                pipe.dropped += len(data)
                continue
            pipe.client.write(data)
            await pipe.client.drain()

    async def _close(self, pipe: _Pipe) -> None:
        if pipe not in self._pipes:
            return
        self._pipes.discard(pipe)
        current = asyncio.current_task()
        for task in pipe.tasks:
            if task is not current:
                task.cancel()
        for writer in (pipe.client, pipe.upstream):
            writer.close()
        for task in pipe.tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                    await task
        for writer in (pipe.client, pipe.upstream):
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
