"""What livefeed's server offers as ``livefeed.body``: streamed bodies straight to sockets.

The contract is ``livefeed.transports.body.BodyWriter``. ``StreamProtocol`` is the HTTP
protocol (``HeaderDeadlineProtocol``, itself uvicorn's httptools protocol) that puts a
``ResponseWriter`` into every request's scope. The writer writes chunks of the response
uvicorn started, as uvicorn's own ``send`` would (``<size hex>\\r\\n<body>\\r\\n``), and
only while uvicorn would: the response started chunked and is not complete, the client
is connected, and the transport is not pushing back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from livefeed.serving.protocols import HeaderDeadlineProtocol

# The scope extension's name, as ``livefeed.transports.body`` reads it.
BODY_EXTENSION = "livefeed.body"


class ResponseWriter:
    """Writes one response's body chunks straight to its transport (a BodyWriter).

    The fan-out asks whether the socket takes data once per reader per event, so the
    answer is kept in slots read directly, like ``SocketWriter``'s: started and not
    stopped (the app ends the response only after ``stop``), the transport's pause flag
    (kept by ``StreamProtocol``), and the transport itself (a client gone closes it).
    """

    __slots__ = ("_cycle", "_on_writable", "_open", "_paused", "_protocol", "_transport", "write")

    def __init__(self, protocol: StreamProtocol, cycle: Any) -> None:
        self._protocol = protocol
        self._cycle = cycle  # uvicorn's RequestResponseCycle: its response state is read
        self._transport = protocol.transport
        self._on_writable: Callable[[], None] | None = None
        self._open = False
        self._paused = False
        # Write what ``frame`` made, now: the transport's own method, no call in between.
        self.write: Callable[[bytes], None] = protocol.transport.write

    @property
    def is_writable(self) -> bool:
        return self._open and not self._paused and not self._transport.is_closing()

    def start(self, on_writable: Callable[[], None]) -> bool:
        cycle = self._cycle
        # Not chunked: a HEAD request (no body is sent) or a body of a declared length.
        if not cycle.response_started or not cycle.chunked_encoding or cycle.response_complete:
            return False
        self._on_writable = on_writable
        self._paused = self._protocol.flow.write_paused
        self._open = True
        self._protocol.streaming = self
        return True

    def frame(self, body: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(body), body)

    def stop(self) -> None:
        self._open = False
        self._on_writable = None
        if self._protocol.streaming is self:
            self._protocol.streaming = None

    def paused(self) -> None:
        self._paused = True

    def resumed(self) -> None:
        self._paused = False
        if self._on_writable is not None:
            self._protocol.loop.call_soon(self._on_writable)


class StreamProtocol(HeaderDeadlineProtocol):
    """HeaderDeadlineProtocol offering ``livefeed.body`` to every request."""

    # The response currently written past ASGI: told when the transport pushes back and
    # when it takes data again.
    streaming: ResponseWriter | None = None
    _offered: tuple[Any, ...] = ()  # requests whose writer is offered (on_headers_complete)

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:  # None or unchanged: an upgrade
            scope: Any = cycle.scope
            scope.setdefault("extensions", {})[BODY_EXTENSION] = ResponseWriter(self, cycle)
            # Requests whose writer is still offered; a finished one's is withdrawn now.
            kept = (c for c in self._offered if not c.response_complete or _withdraw(c))
            self._offered = (*kept, cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for cycle in self._offered:
            _withdraw(cycle)
        self._offered = ()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.streaming is not None:
            self.streaming.paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.streaming is not None:
            self.streaming.resumed()


def _withdraw(cycle: Any) -> bool:
    """Take the writer out of a finished request's scope (False, to filter it out). The
    scope holds the writer, which holds the request's cycle, which holds the scope: a cycle
    only the collector would free (and a serving process freezes what it would walk)."""
    extensions = cycle.scope.get("extensions")
    if extensions is not None:
        writer = extensions.pop(BODY_EXTENSION, None)
        if writer is not None:
            writer.stop()
    return False
