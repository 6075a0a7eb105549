"""Fixtures and tools of the fault-injection suite: a Redis of the test's own, a steady
publisher, the ground truth read from the topic's stream, process figures from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from livefeed.settings import Settings
from livefeed.storage.keys import Keys
from tests.conftest import LiveServer, RedisServer
from tests.helpers import TIMEOUT, auth


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own to kill, flush and restart (AOF on, appendfsync everysec)."""
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_settings(settings: Settings, own_redis: RedisServer) -> Settings:
    return settings.with_(redis_url=own_redis.url)


@pytest.fixture
async def own_server(own_settings: Settings) -> AsyncIterator[LiveServer]:
    """livefeed in this test's loop, on the test's own Redis."""
    server = LiveServer(own_settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# -- the ground truth ------------------------------------------------------------------


async def history(redis_url: str, prefix: str, topic: str = "briefs") -> list[tuple[str, Any]]:
    """The topic's stream as (event id, event data), oldest first: what readers must get."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(prefix)
    try:
        epoch = await client.get(keys.epoch(topic))
        entries = await client.xrange(keys.log(topic))
    finally:
        await client.aclose()
    events = []
    for entry_id, fields in entries:
        event_id = f"{epoch}-{entry_id}"
        events.append((event_id, json.loads(fields["p"] + event_id + fields["s"])["data"]))
    return events


async def history_ids(redis_url: str, prefix: str, topic: str = "briefs") -> list[str]:
    return [event_id for event_id, _ in await history(redis_url, prefix, topic)]


# -- a steady publisher ----------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """One POST /api/briefs and what came back."""

    sent_at: float
    latency: float
    status: int | None  # None: no HTTP answer at all (timeout, connection refused)
    brief_id: str | None = None
    retry_after: str | None = None
    error: str = ""


@dataclass
class Publisher:
    """Posts briefs through the API at a steady rate, one request per tick, and records every
    answer. Requests run concurrently, so a slow answer does not slow the rate."""

    base_url: str
    token: str
    rate: float
    label: str = "brief"
    answers: list[Answer] = field(default_factory=list)
    _stopping: bool = False
    _task: asyncio.Task[None] | None = None

    def start(self, seconds: float) -> None:
        self._task = asyncio.create_task(self._run(seconds))

    def stop(self) -> None:
        self._stopping = True

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def cancel(self) -> None:
        """Stop now, abandoning requests still in flight (their answers are not recorded)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, seconds: float) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with (
            httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT, limits=limits) as client,
            asyncio.TaskGroup() as group,
        ):
            loop = asyncio.get_running_loop()
            start = loop.time()
            tick = 0
            while not self._stopping and tick / self.rate < seconds:
                await asyncio.sleep(max(0.0, start + tick / self.rate - loop.time()))
                group.create_task(self._post(client, tick))
                tick += 1

    async def _post(self, client: httpx.AsyncClient, n: int) -> None:
        sent = time.monotonic()
        try:
            response = await client.post(
                "/api/briefs", json={"text": f"{self.label} {n}"}, headers=auth(self.token)
            )
        except httpx.HTTPError as exc:
            self.answers.append(
                Answer(sent, time.monotonic() - sent, None, error=type(exc).__name__)
            )
            return
        answer = Answer(sent, time.monotonic() - sent, response.status_code)
        if response.status_code == 201:
            answer.brief_id = response.json()["id"]
        else:
            answer.retry_after = response.headers.get("retry-after")
            answer.error = response.text[:200]
        self.answers.append(answer)

    def acknowledged(self) -> list[str]:
        """Ids of the briefs that got a 201, in the order the answers came."""
        return [a.brief_id for a in self.answers if a.status == 201 and a.brief_id]

    def failures(self) -> list[Answer]:
        """Answers other than 201, for failure messages."""
        return [a for a in self.answers if a.status != 201]

    def by_status(self) -> dict[int | None, int]:
        counts: dict[int | None, int] = {}
        for answer in self.answers:
            counts[answer.status] = counts.get(answer.status, 0) + 1
        return counts


# -- process figures -------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int | str = "self") -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def sockets_by_peer(pid: int) -> dict[str, int]:
    """A process's open TCP sockets counted by what they connect to: "listening", the
    remote port for outgoing connections, "reader" for accepted ones."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening = set()
    rows = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
            if inode in inodes:
                rows.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), state))
                if state == "0A":
                    listening.add(int(local.split(":")[1], 16))
    counts: dict[str, int] = {}
    for local, remote, state in rows:
        if state == "0A":
            key = "listening"
        elif local in listening:
            key = "reader"
        else:
            key = f"to port {remote}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def report(text: str) -> None:
    """A measured figure, shown with ``pytest -s`` and kept in the captured output."""
    print(f"[reliability] {text}", flush=True)
