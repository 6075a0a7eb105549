"""The ``livefeed.body`` ASGI scope extension: all the SSE transport knows of its server.

An SSE fan-out writes the same record to thousands of streams. Through ASGI each write is
a coroutine chain per reader (the stream's task, every middleware's ``send`` wrapper, the
server's ``send``) and a record built per reader. A server that can do better offers, in
an HTTP request's scope, ``scope["extensions"]["livefeed.body"]``: a ``BodyWriter`` that
writes the response's body straight to its socket once the response has started.
livefeed's own server does (``livefeed.serving.streams``); under any other ASGI server
``body_writer_for`` answers None and the transport writes with ASGI ``send``. The
response's start, its end and the client's disconnect always go through ASGI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from starlette.types import Scope

from livefeed.transports.extension import offered

BODY_EXTENSION = "livefeed.body"


@runtime_checkable
class BodyWriter(Protocol):
    """Writes one streamed response's body straight to its socket, past ASGI ``send``.

    The bytes written are ``frame(body)``: the body piece as it goes on the wire (an
    HTTP/1.1 chunk). ``frame`` is the same for every writer of one server, so a piece
    framed once can be written to every reader. Nothing may be written while
    ``is_writable`` is False; ``on_writable`` is called (soon, on the loop) when the
    socket takes data again after pushing back.
    """

    @property
    def is_writable(self) -> bool:
        """The response is streaming, the client is there and its socket takes data."""

    def start(self, on_writable: Callable[[], None]) -> bool:
        """Write past ASGI from now on (the response has started); False if this response
        cannot be (then use ``send``)."""

    def frame(self, body: bytes) -> bytes:
        """``body`` as one piece of this response on the wire."""

    def write(self, framed: bytes) -> None:
        """Write what ``frame`` made, now."""

    def stop(self) -> None:
        """No more writes past ASGI: the response is ending."""


def body_writer_for(scope: Scope) -> BodyWriter | None:
    """The request's BodyWriter, or None under a server that offers none."""
    return offered(scope, BODY_EXTENSION, BodyWriter)  # type: ignore[type-abstract]
