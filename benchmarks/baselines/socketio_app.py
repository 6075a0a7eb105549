"""python-socketio with AsyncRedisManager, as its docs show it, under uvicorn (ASGI).

Every client joins the room ``briefs`` on connect; fanout.py emits from outside through
``AsyncRedisManager(url, write_only=True).emit(...)``, the documented way for another
process to emit. Run by fanout.py:

    python benchmarks/baselines/socketio_app.py --port 8003 --redis-url redis://...
"""

from __future__ import annotations

import argparse

import socketio
import uvicorn

ROOM = "briefs"


def create_app(redis_url: str) -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(redis_url, channel="bench-socketio")
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)

    @sio.event
    async def connect(sid: str, environ: dict[str, object]) -> None:
        await sio.enter_room(sid, ROOM)

    return socketio.ASGIApp(sio)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    app = create_app(args.redis_url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", backlog=2048)
