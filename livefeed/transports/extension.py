"""The ``livefeed.frames`` ASGI scope extension: all the WebSocket transport knows of its server.

Fan-out writes the same event to thousands of readers. Through ASGI each write is a
coroutine chain per reader and a frame built per reader. A server that can do better offers,
in each accepted WebSocket's scope, ``scope["extensions"]["livefeed.frames"]``: a
``FrameWriter`` that writes the reader's frames straight to its socket. livefeed's own
server does (``livefeed.serving``); under any other ASGI server ``frames_for`` answers None
and the transport writes with ASGI ``send``. Nothing else differs: accept, receive and close
always go through ASGI, except that a server offering ``livefeed.frames`` drops the
handshake's headers from the scope once the connection is accepted (an idle reader should
not hold them for hours): read what you need of them before accepting.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

from starlette.types import Scope

from livefeed.fanout.subscription import Subscription
from livefeed.stats import Stats

FRAMES_EXTENSION = "livefeed.frames"


@runtime_checkable
class FrameWriter(Protocol):
    """Writes one reader's frames straight to its socket, past ASGI ``send``.

    Once attached it is the subscription's sink: a frame handed to it while the socket
    takes data is written at once (an event's frame encoded once for all readers of the
    fan-out), anything else waits in the subscription's bounded queue and is written, in
    order, when the socket takes data again. Delivered events are counted in ``stats``.
    """

    def attach(self, subscription: Subscription, stats: Stats) -> None:
        """Write ``subscription``'s frames from now on, until ``detach``."""

    def detach(self) -> None:
        """Stop writing: the connection is ending."""


T = TypeVar("T")
# Whether a type meets a runtime-checkable protocol, by (type, protocol): on Python 3.11 each
# such isinstance() walks the protocol's members again, 4 % of a connection's setup.
_MEETS: dict[tuple[type, type], bool] = {}


def offered(scope: Scope, name: str, kind: type[T]) -> T | None:
    """The scope extension ``name`` if the server offers one that is a ``kind``, else None."""
    found: Any = (scope.get("extensions") or {}).get(name)
    if found is None:
        return None
    key = (type(found), kind)
    meets = _MEETS.get(key)
    if meets is None:
        meets = _MEETS[key] = isinstance(found, kind)
    return found if meets else None


def frames_for(scope: Scope) -> FrameWriter | None:
    """The connection's FrameWriter, or None under a server that offers none."""
    return offered(scope, FRAMES_EXTENSION, FrameWriter)  # type: ignore[type-abstract]
