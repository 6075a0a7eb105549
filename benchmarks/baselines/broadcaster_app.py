"""Starlette + encode/broadcaster, the pattern broadcaster's README shows (its chat example).

Each WebSocket subscribes to the channel with ``broadcast.subscribe`` and forwards every
event with ``send_text``; uvicorn with its defaults (uvloop, httptools). Run by fanout.py:

    python benchmarks/baselines/broadcaster_app.py --port 8002 --redis-url redis://...
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator

import anyio
import uvicorn
from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

CHANNEL = "bench:briefs"
SUBSCRIBED = '{"type":"subscribed","topic":"briefs","recovered":true}'


class FixedRedisBackend(RedisBackend):
    """broadcaster 0.3.1's Redis backend, with its start-up race fixed.

    The original wakes its listener before SUBSCRIBE is recorded by redis-py (which adds
    the channel only after sending the command), so the listener can find "no channels",
    stop, and never deliver anything. Waking it after subscribing is the one-line fix.
    """

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ready.set()


broadcast = Broadcast(backend=FixedRedisBackend(os.environ.get("BENCH_REDIS_URL", "redis://")))


async def feed_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    async with anyio.create_task_group() as task_group:

        async def run_chatroom_ws_receiver() -> None:
            async for _ in websocket.iter_text():
                pass
            task_group.cancel_scope.cancel()

        task_group.start_soon(run_chatroom_ws_receiver)
        await chatroom_ws_sender(websocket)


async def chatroom_ws_sender(websocket: WebSocket) -> None:
    async with broadcast.subscribe(channel=CHANNEL) as subscriber:
        await websocket.send_text(SUBSCRIBED)
        async for event in subscriber:
            await websocket.send_text(event.message)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    yield
    await broadcast.disconnect()


app = Starlette(routes=[WebSocketRoute("/ws", feed_ws)], lifespan=lifespan)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    broadcast = Broadcast(backend=FixedRedisBackend(args.redis_url))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", backlog=2048)
