"""Running the app under uvicorn with livefeed's limits instead of uvicorn's loose defaults."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from livefeed import limits
from livefeed.lifecycle import DRAIN_READERS
from livefeed.serving.collector import Collector
from livefeed.serving.protocols import FrameProtocol, HeaderDeadlineProtocol, ServingState
from livefeed.serving.streams import StreamProtocol


def server_config(
    app: Starlette | str,
    host: str,
    port: int,
    drain_seconds: float = 4.0,
    *,
    frames: bool = True,
    **extra: Any,
) -> uvicorn.Config:
    """uvicorn settings: bounded WebSocket frames, no compression, pings, timeouts.

    ``frames=False`` serves WebSockets with uvicorn's own protocol, which offers no
    ``livefeed.frames``, and HTTP without ``livefeed.body``: readers are then written to
    through ASGI ``send``, as under any other ASGI server (the tests run both ways).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # Also bounds the request line and headers (431): h11's size setting does not apply.
        # StreamProtocol adds livefeed.body (SSE records straight to the socket).
        http=StreamProtocol if frames else HeaderDeadlineProtocol,
        # FrameProtocol: websockets-sansio, plus livefeed.frames (pre-encoded frames)
        ws=FrameProtocol if frames else WebSocketsSansIOProtocol,
        ws_max_size=limits.WS_MESSAGE_MAX,
        ws_max_queue=16,
        ws_per_message_deflate=False,  # inflation would be unbounded work per frame
        ws_ping_interval=limits.WS_PING_INTERVAL,
        ws_ping_timeout=limits.WS_PING_TIMEOUT,
        timeout_keep_alive=limits.HTTP_KEEPALIVE_TIMEOUT,
        timeout_graceful_shutdown=int(drain_seconds) + 10,
        lifespan="on",
        log_config=None,  # livefeed configures logging (plain or JSON)
        access_log=False,  # livefeed logs each request itself, with a request id
        server_header=False,
        # One mechanism for client addresses, livefeed's own (http.client_address): uvicorn's
        # would believe X-Forwarded-For / -Proto from loopback whatever TRUSTED_PROXIES says.
        proxy_headers=False,
        **extra,
    )


class Server(uvicorn.Server):
    """uvicorn's server, draining readers before it shuts down.

    uvicorn closes WebSockets with 1012 and waits forever on open SSE streams. livefeed
    first turns /readyz to 503 (load balancers stop sending readers here), then closes its
    WebSockets with 1001 ("reconnect now, elsewhere") and ends SSE streams, spread over the
    drain window, while still answering; only then does uvicorn shut down.
    """

    owns_process = False

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.serving_state = self.server_state = ServingState()
        self.collector = Collector()

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve in this process, which is then the server's alone (``livefeed serve``)."""
        self.owns_process = True
        super().run(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.owns_process:
            # The process is the server's alone: tune its collector (collector.py). Tests,
            # which run servers in-process, keep Python's defaults.
            self.collector.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.collector.stop()
        # The app offers the drain in its lifespan state: no walk through uvicorn's wrappers.
        drain = self.lifespan.state.get(DRAIN_READERS)
        if drain is not None:
            await drain()
        await self._stop_accepting()
        # uvicorn tells the connections it has now to finish; one accepted just before the
        # listener closed joins a moment later, and is turned away at once (protocols).
        self.serving_state.closing = True
        await super().shutdown(sockets)

    async def _stop_accepting(self) -> None:
        """Stop taking connections, then let the ones already accepted get their transports.

        On asyncio's own loop a connection accepted just before ``Server.close()`` builds its
        transport after it, fails an assertion there and leaks its socket (CPython 3.11).
        """
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for sock in server.sockets:
                with contextlib.suppress(Exception):  # uvloop serves without add_reader
                    loop.remove_reader(sock.fileno())
        await asyncio.sleep(0.05)
