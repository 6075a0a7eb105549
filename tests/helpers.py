"""Test helpers: waiting on conditions (never fixed sleeps), WebSocket frames, scaled time."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

# Slow machines (CI under load) scale every test timeout with LIVEFEED_TEST_TIMEOUT_FACTOR.
FACTOR = float(os.environ.get("LIVEFEED_TEST_TIMEOUT_FACTOR", "1"))
TIMEOUT = 5.0 * FACTOR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = TIMEOUT,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def recv_json(ws: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next frame from a ``websockets`` client, parsed."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    frame: dict[str, Any] = json.loads(raw)
    return frame


async def subscribe(ws: Any, topic: str, since: str | None = None) -> list[dict[str, Any]]:
    """Subscribe and return the frames received up to and including ``subscribed``."""
    frame: dict[str, Any] = {"type": "subscribe", "topic": topic}
    if since is not None:
        frame["since"] = since
    await ws.send(json.dumps(frame))
    frames = []
    while True:
        got = await recv_json(ws)
        frames.append(got)
        if got.get("type") == "subscribed" and got.get("topic") == topic:
            return frames


async def expect_silence(ws: Any, seconds: float = 0.3) -> None:
    """Assert that no frame arrives within ``seconds``."""
    try:
        raw = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"expected no frame, got {raw!r}")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
