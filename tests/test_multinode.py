"""Three livefeed nodes on one Redis act as one server, and losing a node loses no reader's news."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import RedisServer
from tests.helpers import TIMEOUT, Background, auth, livefeed_env, subscribe, wait_for

TOKEN = "nodes-token"


class Reader(Background):
    """A reader that follows `briefs`, records every event, and on a lost connection resumes
    on the next node with the last id it saw — as the browser client does."""

    def __init__(self, nodes: list[Any], first: int) -> None:
        self.nodes = nodes
        self.node = first
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.reconnects = 0
        self._ready = asyncio.Event()

    async def ready(self) -> None:
        await asyncio.wait_for(self._ready.wait(), TIMEOUT)

    async def run(self) -> None:
        while True:
            node = self.nodes[self.node]
            if node.process is None:  # killed: try the next node
                self.node = (self.node + 1) % len(self.nodes)
                continue
            try:
                async with websockets.connect(node.ws_url) as ws:
                    since = self.ids[-1] if self.ids else None
                    for frame in await subscribe(ws, "briefs", since=since):
                        self._record(frame)
                    self._ready.set()
                    while True:
                        self._record(json.loads(await ws.recv()))
            except (ConnectionClosed, OSError):
                self.reconnects += 1
                self.node = (self.node + 1) % len(self.nodes)
                await asyncio.sleep(0.05)

    def _record(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "subscribed":
            assert frame["recovered"] is True, "the history covers every resume in this test"
        elif frame.get("type") == "brief.published":
            self.ids.append(frame["id"])
            self.texts.append(frame["data"]["text"])


async def test_three_nodes_act_as_one_and_survive_losing_one(
    livefeed_process, redis_server: RedisServer, prefix: str
) -> None:
    env = livefeed_env(redis_server.url, prefix, TOKEN)
    nodes = [await livefeed_process(env=env) for _ in range(3)]
    readers = [Reader(nodes, i % 3) for i in range(12)]
    for reader in readers:
        reader.start()
    try:
        for reader in readers:
            await reader.ready()
        published: list[str] = []

        async def publish(count: int, tag: str) -> None:
            for i in range(count):
                node = nodes[i % 3] if nodes[i % 3].process is not None else nodes[0]
                async with httpx.AsyncClient(base_url=node.url, timeout=TIMEOUT) as api:
                    response = await api.post(
                        "/api/briefs", json={"text": f"{tag}{i}"}, headers=auth(TOKEN)
                    )
                assert response.status_code == 201
                published.append(f"{tag}{i}")

        await publish(15, "before-")
        # Lose node 2 abruptly (no drain, no close frames) while briefs keep coming.
        nodes[2].stop(signal.SIGKILL)
        await publish(15, "after-")

        def everyone_has_everything() -> bool:
            return all(len(r.texts) >= len(published) for r in readers)

        await wait_for(everyone_has_everything, timeout=15, what="every reader to catch up")
        for reader in readers:
            assert reader.texts == published, "every brief once, in publishing order"
            assert len(set(reader.ids)) == len(reader.ids)
        moved = [r for r in readers if r.reconnects]
        assert len(moved) == 4, "the readers of the lost node (and only they) moved"
    finally:
        for reader in readers:
            await reader.stop()
