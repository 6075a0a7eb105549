"""Running the app under uvicorn with livefeed's limits instead of uvicorn's loose defaults."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette

from livefeed import limits
from livefeed.readers import Readers


def server_config(app: Starlette, host: str, port: int, **extra: Any) -> uvicorn.Config:
    """uvicorn settings: bounded WebSocket frames, no compression, pings, timeouts."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=limits.WS_MESSAGE_MAX,
        ws_max_queue=16,
        ws_per_message_deflate=False,  # inflation would be unbounded work per frame
        ws_ping_interval=limits.WS_PING_INTERVAL,
        ws_ping_timeout=limits.WS_PING_TIMEOUT,
        timeout_keep_alive=limits.HTTP_KEEPALIVE_TIMEOUT,
        timeout_graceful_shutdown=int(limits.SHUTDOWN_GRACE) + 5,
        h11_max_incomplete_event_size=16 * 1024,
        lifespan="on",
        server_header=False,
        **extra,
    )


class Server(uvicorn.Server):
    """uvicorn's server, but readers are told "going away" (1001) before it shuts down.

    uvicorn closes WebSockets with 1012 and waits forever on open SSE streams; livefeed
    closes them itself first, with the code that makes browsers reconnect at once.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        readers: Readers | None = getattr(getattr(app, "state", None), "readers", None)
        for server in self.servers:
            server.close()  # stop accepting first, so readers reconnect elsewhere
        if readers is not None:
            await readers.drain(limits.SHUTDOWN_GRACE)
        await super().shutdown(sockets)
