"""uvicorn's protocols with livefeed's additions: a header deadline, and pre-encoded frames.

HTTP: uvicorn waits forever for a request's headers (and for the first byte of a new
connection), so a client that trickles a header every few seconds (slowloris) holds a
connection, and enough of them hold the server. Here each request must have sent its
complete headers within ``limits.HTTP_HEADER_TIMEOUT`` seconds of its first byte (or of
the connection opening), or the connection is closed. And uvicorn's httptools path puts no
bound on the request line and headers (``h11_max_incomplete_event_size`` only applies to
h11): here more than ``limits.HTTP_HEADER_BYTES_MAX`` bytes of them get a 431 and the
connection is closed, before they are kept in memory.

WebSocket: ``FrameProtocol`` is uvicorn's websockets sans-I/O protocol, unchanged in
everything it does (handshake, 64 KiB limit -> 1009, no compression, pings, close), that
also offers the ASGI scope extension ``livefeed.frames``: a ``SocketWriter`` (frames.py)
that writes pre-encoded frames straight to the connection's transport.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.protocol import OPEN, Protocol

from livefeed import limits
from livefeed.serving.frames import FrameCache, SocketWriter

# The scope extension's name, as ``livefeed.transports.extension`` reads it.
FRAMES_EXTENSION = "livefeed.frames"


class ServingState(ServerState):
    """uvicorn's state shared by one server's connections, and livefeed's."""

    def __init__(self) -> None:
        super().__init__()
        # The server told its connections to finish: a connection accepted now is turned away.
        self.closing = False
        # The fan-out's current frame, shared by all the server's readers.
        self.frames = FrameCache()


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
        state = self.server_state
        if isinstance(state, ServingState) and state.closing:
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
        self._answer_and_close(_TOO_LARGE)

    def _answer_and_close(self, answer: bytes) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(answer)
        if not transport.can_write_eof():
            transport.close()
            return
        # A lingering close: closing with the rest of the request still arriving would reset
        # the connection and the client might never read the answer. Send it, end our side,
        # discard what still comes for a moment, then close.
        transport.write_eof()
        self.loop.call_later(limits.HTTP_LINGER, transport.close)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        kind: Any = self.ws_protocol_class
        if not (isinstance(kind, type) and issubclass(kind, FrameProtocol)):
            # uvicorn writes the request out again for the WebSocket protocol to parse.
            super().handle_websocket_upgrade()
        elif isinstance(request := _plain_upgrade(self.scope, self.url), bytes):
            # Not an upgrade a WebSocket client sends: answered here, the same way under
            # every websockets release (some never answer these, and hold the socket).
            self.connections.discard(self)
            self._answer_and_close(request)
        else:
            # Hand over the request as parsed already: no second parse per handshake.
            self.connections.discard(self)
            protocol: FrameProtocol = kind(
                config=self.config, server_state=self.server_state, app_state=self.app_state
            )
            protocol.adopt(self.transport, self.server, self.client, self.scheme)
            self.transport.set_protocol(protocol)
            protocol.take_request(request)
        # The connection is the WebSocket protocol's now. The parser holds this protocol's
        # callbacks and this protocol holds the parser: a cycle that only the collector
        # would free, and a serving process freezes what the collector would walk.
        self.parser = None  # type: ignore[assignment]

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
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
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

    socket_writer: SocketWriter | None = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue: Any = _Inbox()
        self.writable: Any = _Flag()
        # Under a plain uvicorn.Server (no ServingState), each connection encodes its own.
        self.frame_cache = (
            server_state.frames if isinstance(server_state, ServingState) else FrameCache()
        )

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.socket_writer is not None:
            self.socket_writer.is_open = (
                self.handshake_complete and not self.close_sent and self.initial_response is None
            )
        if self.handshake_complete and getattr(self, "response", None) is not None:
            self._forget_handshake()

    def _forget_handshake(self) -> None:
        """Free what was needed only to answer the handshake, for the connection's life.

        The request and response, their headers in the scope (the app read what it needed
        before accepting: ``livefeed.frames`` says so), and websockets' handshake parser,
        whose suspended frame holds the request for as long as the connection lives: it is
        swapped for the frame parser it had moved on to, while no frame has begun arriving
        (an empty buffer), where the two are in the same state.
        """
        self.request = self.response = None  # type: ignore[assignment]
        if self.socket_writer is not None:
            self.scope["headers"] = []
        conn = self.conn
        if conn.state is OPEN and not conn.reader.buffer and conn.parser_exc is None:
            conn.parser = Protocol.parse(conn)
            next(conn.parser)

    def adopt(self, transport: Any, server: Any, client: Any, scheme: str | None) -> None:
        """``connection_made`` for a connection the HTTP protocol upgraded: its addresses
        are known already (asking the socket again was 5 % of a connection's setup)."""
        self.connections.add(self)
        self.transport = transport
        self.server, self.client = server, client
        self.scheme = "wss" if scheme == "https" else "ws"

    def take_request(self, request: Request) -> None:
        """The handshake request, parsed by the HTTP protocol that upgraded the connection."""
        conn = self.conn
        # websockets' parser would have read the request and moved on to frames: start there.
        conn.parser = Protocol.parse(conn)
        next(conn.parser)
        self.handle_connect(request)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake was refused
            self.socket_writer = SocketWriter(
                self.transport, self.writable, self.loop, self.frame_cache
            )
            scope["extensions"][FRAMES_EXTENSION] = self.socket_writer

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.socket_writer is not None:
            self.socket_writer.resumed()


def _refusal(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = f"Failed to open a WebSocket connection: {message}.\n".encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n{extra}connection: close\r\n\r\n"
    ).encode() + body


_NOT_GET = _refusal(405, "Method Not Allowed", "only GET upgrades", "allow: GET\r\n")
_NOT_HTTP11 = _refusal(400, "Bad Request", "the handshake is HTTP/1.1")
_BAD_TARGET = _refusal(400, "Bad Request", "the request target is not ASCII")
_TOO_MANY = _refusal(431, "Request Header Fields Too Large", "too many header lines")
_BODY = _refusal(400, "Bad Request", "a handshake has no body")


def _plain_upgrade(scope: Any, target: bytes) -> Request | bytes:
    """The upgrade request as websockets' own parser would have read it, or the answer to a
    request it would refuse to read (what websockets 17 answers)."""
    if scope["method"] != "GET":
        return _NOT_GET
    if scope["http_version"] != "1.1":
        return _NOT_HTTP11
    if not target.isascii():
        return _BAD_TARGET
    raw = scope["headers"]
    if len(raw) > limits.WS_HANDSHAKE_HEADERS_MAX:
        return _TOO_MANY
    headers = Headers()
    for name, value in raw:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return _BODY
        headers[name.decode("latin-1")] = value.decode("latin-1")
    return Request(target.decode("ascii"), headers)
