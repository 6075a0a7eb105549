"""uvicorn's protocols with livefeed's additions: a header deadline, and pre-encoded frames.

HTTP: uvicorn waits forever for a request's headers (and for the first byte of a new
connection), so a client that trickles a header every few seconds (slowloris) holds a
connection, and enough of them hold the server. Here each request must have sent its
complete headers within ``limits.HTTP_HEADER_TIMEOUT`` seconds of its first byte (or of
the connection opening), or the connection is closed. And uvicorn's httptools path puts no
bound on the request line and headers (``h11_max_incomplete_event_size`` only applies to
h11): here more than ``limits.HTTP_HEADER_BYTES_MAX`` bytes of them get a 431 and the
connection is closed, before they are kept in memory.

WebSocket: fan-out writes the same event to thousands of readers. Through ASGI each write
is a coroutine chain per reader (Starlette, middleware wrappers, uvicorn's ``send``) and a
frame built per reader by websockets. A server's text frame is the same bytes for every
reader (servers do not mask), so livefeed encodes each event's frame once and writes it
straight to each reader's transport. ``FrameProtocol`` is uvicorn's websockets sans-I/O
protocol, unchanged in everything it does (handshake, 64 KiB limit -> 1009, no
compression, pings, close), that also offers the ASGI scope extension ``livefeed.frames``:
a ``FrameWriter`` that writes complete frames while the connection is open and its
transport is not pushing back. Accept, receive and close still go through ASGI.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from livefeed import limits


class _HeadersTooLarge(Exception):
    """Raised inside the parser's callbacks to stop it; answered with 431."""


_TOO_LARGE_BODY = b"request line or headers too large"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose headers are too slow to arrive or
    too large."""

    _header_deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _too_large = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if getattr(self.server_state, "closing", False):
            # Accepted as the server shut down, after it told its connections to finish:
            # nobody would tell this one, and it would wait out its header deadline.
            transport.close()
            return
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_deadline is None:
            self._arm()  # the next request on a kept-alive connection

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def _count_header_bytes(self, n: int) -> None:
        # The parser hands over a long URL or header in pieces as they arrive, so this
        # stops a 50 MiB URL after its first few kilobytes.
        self._header_bytes += n
        if self._header_bytes > limits.HTTP_HEADER_BYTES_MAX:
            self._too_large = True
            raise _HeadersTooLarge

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return  # answered and closing: ignore what is still arriving
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any error raised in a parser callback with a 400; ours is a 431.
        if not self._too_large:
            super().send_400_response(msg)
            return
        self._disarm()
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(_TOO_LARGE)
        if not transport.can_write_eof():
            transport.close()
            return
        # A lingering close: closing with the rest of the headers still arriving would reset
        # the connection and the client might never read the answer. Send it, end our side,
        # discard what still comes for a moment, then close.
        transport.write_eof()
        self.loop.call_later(limits.HTTP_LINGER, transport.close)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(
            limits.HTTP_HEADER_TIMEOUT, self._headers_too_slow
        )

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()


FRAMES_EXTENSION = "livefeed.frames"


class FrameWriter:
    """Writes pre-encoded frames to one WebSocket connection's transport.

    The fan-out asks ``is_writable`` once per reader per event, so the answer is kept in
    three places it reads directly: whether the app accepted and has not closed (kept up
    to date by ``FrameProtocol.send``), the transport's pause flag, and the transport
    itself (every other way a connection ends closes the transport).
    """

    __slots__ = ("_on_writable", "_open", "_protocol", "_transport", "_writable")

    def __init__(self, protocol: FrameProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._writable: _Flag = protocol.writable
        self._open = False
        self._on_writable: Callable[[], None] | None = None

    @property
    def is_open(self) -> bool:
        """Accepted, no close frame sent or received, the peer still there."""
        return self._open and not self._transport.is_closing()

    @property
    def is_writable(self) -> bool:
        """Open, and the transport's buffer is below its high-water mark."""
        return self._open and self._writable._set and not self._transport.is_closing()

    def write(self, frame: bytes) -> None:
        """Write one complete, encoded frame; only while ``is_writable``."""
        self._transport.write(frame)

    def on_writable(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (soon, on the loop) whenever the transport takes data again."""
        self._on_writable = callback

    def resumed(self) -> None:
        if self._on_writable is not None:
            self._protocol.loop.call_soon(self._on_writable)


class _Inbox:
    """The part of ``asyncio.Queue`` uvicorn uses, without its four deques per connection."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def empty(self) -> bool:
        return not self._items


class _Flag:
    """The part of ``asyncio.Event`` uvicorn uses for ``writable``, without a deque."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter


class FrameProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, offering ``livefeed.frames`` to the app.

    It also holds less per idle connection than uvicorn's: a slimmer receive queue and
    writable flag, and no handshake request and response once the handshake is done.
    """

    frame_writer: FrameWriter | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: Any = _Inbox()
        self.writable: Any = _Flag()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.frame_writer is not None:
            self.frame_writer._open = (
                self.handshake_complete and not self.close_sent and self.initial_response is None
            )
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # Needed only to answer the handshake: free their headers for the connection's life.
            self.request = self.response = None  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake was refused
            self.frame_writer = FrameWriter(self)
            scope["extensions"][FRAMES_EXTENSION] = self.frame_writer

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.frame_writer is not None:
            self.frame_writer.resumed()


def frame_writer(scope: Any) -> FrameWriter | None:
    """The connection's FrameWriter, or None under a server that does not offer one."""
    writer = (scope.get("extensions") or {}).get(FRAMES_EXTENSION)
    return writer if isinstance(writer, FrameWriter) else None
