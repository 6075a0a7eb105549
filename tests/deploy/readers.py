"""A reader of the deploy tier: the reliability checker, bound to a source address, that
answers ``unavailable`` as livefeed's own page does (subscribe again a moment later)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.reliability.checker import Checker


class Reader(Checker):
    def __init__(self, url: str, source: str, since: str, name: str) -> None:
        super().__init__(
            [url], since={"briefs": since}, name=name, connect_options={"local_addr": (source, 0)}
        )
        self.unavailable = 0
        self.live_times: list[float] = []

    def _subscribe_frame(self, topic: str) -> str:
        frame: dict[str, Any] = {"type": "subscribe", "topic": topic}
        last = self.last[topic]
        if last is not None:
            frame["since"] = last
        return json.dumps(frame)

    async def _session(self, ws: ClientConnection) -> None:
        for topic in self.topics:
            await ws.send(self._subscribe_frame(topic))
        pending = set(self.topics)
        while True:
            raw = await ws.recv()
            assert isinstance(raw, str), f"{self.name}: unexpected binary frame"
            if raw.startswith('{"type":"error"') and '"unavailable"' in raw:
                # The server could not subscribe in time (it is busy): ask again shortly.
                self.unavailable += 1
                await asyncio.sleep(random.uniform(0.2, 1.0))
                for topic in pending:
                    await ws.send(self._subscribe_frame(topic))
                continue
            topic = self._record(raw)
            if topic is not None and pending:
                pending.discard(topic)
                if not pending:
                    self.live_times.append(time.monotonic())
                    self.live.set()

    def resume_gaps(self) -> list[float]:
        """Seconds from each close to being subscribed again."""
        gaps = []
        for closed in self.close_times:
            after = [t for t in self.live_times if t > closed]
            if after:
                gaps.append(after[0] - closed)
        return gaps
