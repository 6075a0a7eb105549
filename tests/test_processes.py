"""Whole livefeed processes: two on one Redis act as one; data survives restarts of both."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import RedisServer
from tests.helpers import auth, livefeed_env, recv_json, subscribe, wait_for

TOKEN = "process-token"


async def test_an_event_published_through_one_process_reaches_a_reader_of_another(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    env = livefeed_env(redis_server.url, prefix, TOKEN)
    first = await livefeed_process(env=env)
    second = await livefeed_process(env=env)
    async with (
        websockets.connect(second.ws_url) as ws,
        httpx.AsyncClient(base_url=first.url) as api,
    ):
        await subscribe(ws, "briefs")
        response = await api.post(
            "/api/briefs", json={"text": "via the first"}, headers=auth(TOKEN)
        )
        assert response.status_code == 201
        event = await recv_json(ws)
        assert event["type"] == "brief.published"
        assert event["data"]["id"] == response.json()["id"]


def _redis_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "livefeed-redis.json").read_text())["pid"])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"


async def test_data_survives_a_restart_of_livefeed_and_its_embedded_redis(
    livefeed_process, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {"LIVEFEED_EDITOR_TOKEN": TOKEN, "LIVEFEED_REDIS_URL": ""}
    server = await livefeed_process(["--data-dir", str(data_dir), "--demo"], env)
    async with httpx.AsyncClient(base_url=server.url) as api:
        brief = (await api.post("/api/briefs", json={"text": "Kept"}, headers=auth(TOKEN))).json()
        slug = "xi-putin-moscow-talks"
        comment = await api.post(
            f"/api/articles/{slug}/comments", json={"author": "Ann", "text": "Hi"}
        )
        assert comment.status_code == 201
        position = (await api.get("/api/briefs")).json()["last_event_id"]
    redis_pid = _redis_pid(data_dir)
    assert server.stop(signal.SIGTERM) == 0, server.output
    await wait_for(lambda: not _running(redis_pid), what="the embedded Redis to stop with livefeed")

    again = await livefeed_process(["--data-dir", str(data_dir), "--demo"], env)
    async with httpx.AsyncClient(base_url=again.url) as api:
        briefs = (await api.get("/api/briefs")).json()
        assert briefs["items"][0]["id"] == brief["id"]
        assert len(briefs["items"]) == 6  # the demo's five were not loaded twice
        comments = (await api.get(f"/api/articles/{slug}/comments")).json()["items"]
        assert [c["text"] for c in comments] == ["Hi"]
        # The event history survived too: a reader resumes from before the restart.
        published = (
            await api.post("/api/briefs", json={"text": "New"}, headers=auth(TOKEN))
        ).json()
    async with websockets.connect(again.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=position)
        assert [f["data"]["id"] for f in frames[:-1]] == [published["id"]]
        assert frames[-1]["recovered"] is True


async def test_a_stale_embedded_redis_from_a_killed_livefeed_is_reused(
    livefeed_process, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {"LIVEFEED_EDITOR_TOKEN": TOKEN, "LIVEFEED_REDIS_URL": ""}
    server = await livefeed_process(["--data-dir", str(data_dir)], env)
    async with httpx.AsyncClient(base_url=server.url) as api:
        brief = (
            await api.post("/api/briefs", json={"text": "Before the crash"}, headers=auth(TOKEN))
        ).json()
    redis_pid = _redis_pid(data_dir)
    server.stop(signal.SIGKILL)
    assert _running(redis_pid)  # left behind, as after a crash
    again = await livefeed_process(["--data-dir", str(data_dir)], env)
    assert _redis_pid(data_dir) == redis_pid
    async with httpx.AsyncClient(base_url=again.url) as api:
        assert (await api.get("/api/briefs")).json()["items"][0]["id"] == brief["id"]
    assert again.stop(signal.SIGTERM) == 0
    await wait_for(lambda: not _running(redis_pid), what="the reused Redis to stop with livefeed")


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _socket_count(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


async def test_workers_share_one_port_and_sigterm_sends_every_reader_away(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    env = livefeed_env(redis_server.url, prefix, TOKEN)
    # The default drain window: every reader must be sent away within 5 s.
    server = await livefeed_process(["--workers", "2"], env)
    # multiprocessing's resource tracker is a child too; the workers are the ones serving.
    await wait_for(
        lambda: len([w for w in _children(server.process.pid) if _socket_count(w) > 2]) == 2,
        what="two serving workers",
    )
    workers = [w for w in _children(server.process.pid) if _socket_count(w) > 2]
    before = {w: _socket_count(w) for w in workers}
    ws_url = server.ws_url
    clients: list[websockets.ClientConnection] = []
    try:
        # The kernel hands connections to whichever worker accepts first: connect until
        # both have readers (bounded).
        while len(clients) < 96:
            for _ in range(8):
                ws = await websockets.connect(ws_url)
                clients.append(ws)
                await subscribe(ws, "briefs")
            grown = {w: _socket_count(w) - before[w] for w in workers}
            if all(n > 0 for n in grown.values()):
                break
        assert all(n > 0 for n in grown.values()), f"readers per worker: {grown}"
        async with httpx.AsyncClient(base_url=server.url) as api:
            response = await api.post("/api/briefs", json={"text": "to all"}, headers=auth(TOKEN))
        for ws in clients:
            assert (await recv_json(ws))["data"]["id"] == response.json()["id"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        server.process.send_signal(signal.SIGTERM)
        codes = []
        for ws in clients:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        assert codes == [1001] * len(clients)
        assert loop.time() - started < 5
        assert server.stop() == 0
    finally:
        for ws in clients:
            await ws.close()
