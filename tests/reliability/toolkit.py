"""The fault-test toolkit: what every reliability test runs around its fault.

A ``Watch`` is the scaffolding: readers (``Checker``) following a topic from where it stands,
a steady ``Publisher`` posting through the API, and the ground truth read from the topic's
stream once the dust settles; ``ConnectionKiller`` cuts livefeed's Redis connections; the
process figures come from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from livefeed.limits import HTTP_KEEPALIVE_TIMEOUT
from livefeed.storage.keys import Keys
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth, cancel_and_wait
from tests.reliability.checker import Checker, start_all, stop_all, wait_until_all_have


def report(text: str) -> None:
    """A measured figure, shown with ``pytest -s`` and kept in the captured output."""
    print(f"[reliability] {text}", flush=True)


# -- the ground truth ------------------------------------------------------------------


async def position(url: str, path: str = "/api/briefs") -> str:
    """Where a topic stands now (its listing's ``last_event_id``): readers resume from here."""
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as api:
        return str((await api.get(path, params={"limit": 1})).json()["last_event_id"])


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


# -- the scaffolding -------------------------------------------------------------------


def checkers(
    urls: Sequence[str],
    count: int,
    since: str,
    *,
    name: str = "r",
    topic: str = "briefs",
    spread: bool = False,
    **options: Any,
) -> list[Checker]:
    """``count`` readers of ``topic`` from ``since``, each trying ``urls`` in turn (starting
    at a different one each if ``spread``)."""
    urls = list(urls)
    made = []
    for i in range(count):
        turn = i % len(urls) if spread else 0
        ordered = urls[turn:] + urls[:turn]
        made.append(Checker(ordered, [topic], {topic: since}, name=f"{name}{i}", **options))
    return made


@dataclass
class Watch:
    """Readers following a topic while a publisher posts briefs, around a fault.

    ``async with`` it and every reader is subscribed; on the way out the publisher and the
    readers stop, whatever happened. ``settle`` waits for the publisher's last answer and
    for every reader to hold the topic's whole stream (kept in ``truth``, with the data).
    """

    readers: list[Checker]
    publisher: Publisher
    redis_url: str  # where the ground truth is read
    prefix: str
    _: KW_ONLY
    topic: str = "briefs"
    since: str | None = None  # the truth is what came after it (on a shared stream)
    batch: int = 50  # readers arrive this many at a time, not as one spike
    start_timeout: float = TIMEOUT
    truth: list[tuple[str, Any]] = field(default_factory=list)

    async def __aenter__(self) -> Watch:
        try:
            for first in range(0, len(self.readers), self.batch):
                await start_all(self.readers[first : first + self.batch], self.start_timeout)
        except BaseException:
            await stop_all(self.readers)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.publisher.stop()
        await stop_all(self.readers)

    async def settle(self, timeout: float = TIMEOUT) -> list[str]:
        """The topic's event ids once the publisher is done and every reader has them all."""
        await self.publisher.wait()
        self.truth = await history(self.redis_url, self.prefix, self.topic)
        ids = [event_id for event_id, _ in self.truth]
        if self.since in ids:
            self.truth = self.truth[ids.index(self.since) + 1 :]
            ids = ids[ids.index(self.since) + 1 :]
        await wait_until_all_have(self.readers, self.topic, ids, timeout)
        return ids

    def check(self, truth: Sequence[str], *, connections: int | None = None) -> None:
        """Every reader got exactly ``truth`` (no gap, no duplicate, in order), over
        ``connections`` connections if given."""
        for reader in self.readers:
            reader.check(self.topic, truth)
            if connections is not None:
                assert reader.connections == connections, (
                    f"{reader.name} was disconnected: {reader.closes}"
                )

    def every_write_acknowledged(self, truth: Sequence[str]) -> None:
        """Every brief posted was answered 201, as many as ``truth`` has events."""
        assert self.publisher.by_status() == {201: len(truth)}, self.publisher.failures()[:3]


@contextlib.asynccontextmanager
async def watching(
    server: LiveServer, redis_url: str, *, readers: int, rate: float, **options: Any
) -> AsyncIterator[Watch]:
    """A ``Watch`` of ``server``'s briefs: its readers, its editor posting at ``rate``."""
    since = await position(server.url)
    followers = checkers([server.ws_url], readers, since, **options)
    publisher = Publisher(server.url, server.token, rate)
    async with Watch(followers, publisher, redis_url, server.settings.redis_prefix) as watch:
        yield watch


class ConnectionKiller:
    """Cuts livefeed's Redis connections of one type (``CLIENT KILL TYPE pubsub`` or
    ``normal``), as a failing network or an operator would; ``kills`` counts them."""

    def __init__(self, redis_url: str, kind: str) -> None:
        self.kind = kind
        self.kills = 0
        self._admin = aioredis.Redis.from_url(redis_url)

    async def __aenter__(self) -> ConnectionKiller:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._admin.aclose()

    async def every(
        self, seconds: float, *, times: int | None = None, until: Callable[[], bool] | None = None
    ) -> int:
        """Cut them every ``seconds``, ``times`` times or until ``until()``; how many were cut."""
        cuts = 0
        while (times is None or cuts < times) and not (until is not None and until()):
            await asyncio.sleep(seconds)
            self.kills += await self._admin.client_kill_filter(_type=self.kind)
            cuts += 1
        return self.kills


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
        await cancel_and_wait(self._task)

    async def _run(self, seconds: float) -> None:
        # An idle connection is dropped well before the server's keep-alive timeout closes
        # it: at equal timeouts (httpx's default 5 s) a POST now and then met a connection
        # the server was closing that instant (ReadError), as any client would.
        limits = httpx.Limits(
            max_connections=200,
            max_keepalive_connections=50,
            keepalive_expiry=HTTP_KEEPALIVE_TIMEOUT / 2,
        )
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
