"""Readers connected right now, across every livefeed process, for the editors' pages.

Each process reports its own counts every ``PRESENCE_INTERVAL`` seconds as one field of
a shared hash (its report carries the time it was made); readers of the counts add up
the fresh reports and drop the ones of processes that stopped reporting (crashed or
killed without saying goodbye). A process that stops cleanly withdraws its report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from livefeed import limits
from livefeed.events import ARTICLE_PREFIX
from livefeed.lifecycle import stop_tasks
from livefeed.storage.connect import Client
from livefeed.storage.keys import Keys

logger = logging.getLogger("livefeed.presence")


@dataclass(frozen=True, slots=True)
class ReaderCounts:
    """Open reader connections, in total and following each article."""

    total: int = 0
    articles: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"total": self.total, "articles": self.articles}

    @classmethod
    def of(cls, connections: dict[str, int], topics: dict[str, int]) -> ReaderCounts:
        """One process's counts from its open connections (by transport) and the local
        followers of each topic: a reader of an article follows ``article:<slug>``."""
        articles = {
            name.removeprefix(ARTICLE_PREFIX): count
            for name, count in topics.items()
            if name.startswith(ARTICLE_PREFIX) and count > 0
        }
        return cls(sum(connections.values()), articles)


# What a process reports: its total and its per-article counts.
Counter = Callable[[], ReaderCounts]


class Presence:
    """This process's reports, and the sum of every process's."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.desk.readers
        self.process = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._task: asyncio.Task[None] | None = None

    async def report(self, counts: ReaderCounts) -> None:
        record = {"at": time.time(), **counts.to_json()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key, self.process, json.dumps(record, separators=(",", ":")))
            # The whole hash goes away once no process reports any more.
            pipe.expire(self._key, int(limits.PRESENCE_STALE * 4))
            await pipe.execute()

    async def withdraw(self) -> None:
        await self._redis.hdel(self._key, self.process)

    async def read(self) -> ReaderCounts:
        """The sum of every process's fresh report."""
        reports = await self._redis.hgetall(self._key)
        now = time.time()
        total = 0
        articles: dict[str, int] = {}
        stale = []
        for process, raw in reports.items():
            try:
                record = json.loads(raw)
                fresh = now - float(record["at"]) <= limits.PRESENCE_STALE
                if fresh:
                    total += int(record["total"])
                    for slug, count in record["articles"].items():
                        articles[slug] = articles.get(slug, 0) + int(count)
            except (ValueError, KeyError, TypeError, AttributeError):
                fresh = False
            if not fresh:
                stale.append(process)
        if stale:
            await self._redis.hdel(self._key, *stale)
        ranked = dict(sorted(articles.items(), key=lambda item: (-item[1], item[0])))
        return ReaderCounts(total, ranked)

    def start(self, counter: Counter) -> None:
        """Report ``counter()`` now and every ``PRESENCE_INTERVAL`` seconds until ``stop``."""
        self._task = asyncio.create_task(self._run(counter), name="livefeed-presence")

    async def stop(self) -> None:
        if self._task is not None:
            # One cancel can be swallowed by redis-py's wait_for on 3.11 (see lifecycle).
            await stop_tasks([self._task])
            self._task = None
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(limits.SHUTDOWN_STEP):
                await self.withdraw()

    async def _run(self, counter: Counter) -> None:
        while True:
            try:
                await self.report(counter())
            except (RedisError, OSError) as exc:
                logger.debug("could not report reader counts: %s", exc)
            await asyncio.sleep(limits.PRESENCE_INTERVAL)
