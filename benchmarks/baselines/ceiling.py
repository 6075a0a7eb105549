"""The ceiling: a bare ``websockets`` server, one Redis subscription, ``broadcast()``.

What the websockets docs show for fan-out (asyncio server, a set of connections,
``websockets.broadcast``), fed by one redis-py pub/sub subscription. Run by fanout.py:

    python benchmarks/baselines/ceiling.py --port 8001 --redis-url redis://127.0.0.1:6390
"""

from __future__ import annotations

import argparse
import asyncio

import redis.asyncio as redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

CHANNEL = "bench:briefs"
SUBSCRIBED = '{"type":"subscribed","topic":"briefs","recovered":true}'
CONNECTIONS: set[ServerConnection] = set()


async def handler(websocket: ServerConnection) -> None:
    CONNECTIONS.add(websocket)
    try:
        await websocket.send(SUBSCRIBED)
        await websocket.wait_closed()
    finally:
        CONNECTIONS.discard(websocket)


async def relay(url: str) -> None:
    client = redis.Redis.from_url(url)
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(CONNECTIONS, message["data"].decode())


async def main(port: int, url: str) -> None:
    # No compression: the same wire as livefeed (and the load client never offers it).
    async with serve(handler, "127.0.0.1", port, compression=None, backlog=2048) as server:
        relay_task = asyncio.create_task(relay(url))
        await server.serve_forever()
        relay_task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.port, args.redis_url))
    else:
        asyncio.run(main(args.port, args.redis_url))
