"""Resuming at the edges of history: lost histories, the retention window, and resumes racing
a publisher that runs flat out. A resume is either complete (``recovered: true`` and exactly
the missed events) or refused (``recovered: false`` and no events) — never partial."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import websockets
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from livefeed.settings import Settings
from livefeed.storage.eventlog import EventLog
from tests.conftest import LiveServer, RedisServer
from tests.helpers import TIMEOUT, auth, running, started, subscribe, wait_for
from tests.reliability.checker import Checker, id_key, problems, start_all, stop_all
from tests.reliability.toolkit import checkers, history_ids, position


async def _publish(server: LiveServer, count: int, label: str) -> list[str]:
    async with server.client() as api:
        ids = []
        for i in range(count):
            response = await api.post(
                "/api/briefs", json={"text": f"{label} {i}"}, headers=auth(server.token)
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids


async def _resume(server: LiveServer, since: str) -> tuple[list[str], bool]:
    """Subscribe with ``since``: the event ids replayed before ``subscribed``, and recovered."""
    async with websockets.connect(server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=since)
    replayed = [f["id"] for f in frames[:-1]]
    return replayed, frames[-1]["recovered"]


def _check_after_loss(reader: Checker, before: list[str], after: list[str]) -> None:
    """Old history exactly, then ``recovered: false``, then only events of the new history,
    ending with its last (what came between is what the reader refetches over HTTP)."""
    lost_at = reader.not_recovered("briefs")
    assert lost_at == [len(before)], f"recovered:false after {lost_at} events, not {len(before)}"
    got = reader.ids["briefs"]
    assert not problems(got[: len(before)], before)
    live = got[len(before) :]
    assert live, "nothing live after the history was lost"
    start = after.index(live[0])
    assert not problems(live, after[start:]), problems(live, after[start:])


async def test_history_lost_by_flushall_is_reported_not_recovered_never_replayed_partially(
    own_server: LiveServer, own_redis: RedisServer
) -> None:
    prefix = own_server.settings.redis_prefix
    origin = await position(own_server.url)
    watcher = Checker([own_server.ws_url], since={"briefs": origin}, name="watcher")
    await start_all([watcher])
    try:
        await _publish(own_server, 10, "before")
        before = await history_ids(own_redis.url, prefix)
        await wait_for(lambda: watcher.has("briefs", before[-1]), what="the watcher")
        admin = aioredis.Redis.from_url(own_redis.url)
        try:
            await admin.flushall()
        finally:
            await admin.aclose()
        await _publish(own_server, 5, "after")
        after = await history_ids(own_redis.url, prefix)
        await wait_for(lambda: watcher.has("briefs", after[-1]), what="the watcher, live again")
    finally:
        await stop_all([watcher])
    assert len(after) == 5 and id_key(after[0])[0] != id_key(before[0])[0], "a new epoch"
    # The new history's entries are newer in time than every old id: without the epoch an
    # old `since` would look like a valid position in it.
    assert id_key(after[0])[1:] > id_key(before[-1])[1:]
    for since in (before[0], before[4], before[-1]):
        replayed, recovered = await _resume(own_server, since)
        assert (replayed, recovered) == ([], False), f"since {since}: {replayed} {recovered}"
    # `origin` was read before any history existed ("no history yet": reads write no epoch),
    # so everything that exists now came after it: the new history, whole, is its replay.
    assert await _resume(own_server, origin) == (after, True)
    replayed, recovered = await _resume(own_server, after[1])
    assert (replayed, recovered) == (after[2:], True)
    _check_after_loss(watcher, before, after)


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with started(RedisServer(tmp_path / "volatile", appendonly=False)) as server:
        yield server


async def test_redis_restarted_empty_tells_connected_readers_to_refetch(
    settings: Settings, volatile_redis: RedisServer
) -> None:
    """No persistence, SIGKILL, restart: the hub's replay finds the history gone."""
    prefix = settings.redis_prefix
    async with running(LiveServer(settings.with_(redis_url=volatile_redis.url))) as server:
        origin = await position(server.url)
        readers = checkers([server.ws_url], 3, origin)
        await start_all(readers)
        try:
            await _publish(server, 10, "before")
            before = await history_ids(volatile_redis.url, prefix)
            for reader in readers:
                await wait_for(lambda r=reader: r.has("briefs", before[-1]), what=reader.name)
            volatile_redis.stop(signal.SIGKILL)
            volatile_redis.start()
            hub = server.services.hub
            await wait_for(lambda: hub.is_connected, timeout=10, what="the hub to reconnect")
            await wait_for(
                lambda: all(r.not_recovered("briefs") for r in readers),
                what="every reader to be told recovered: false",
            )
            await _publish(server, 5, "after")
            after = await history_ids(volatile_redis.url, prefix)
            for reader in readers:
                await wait_for(lambda r=reader: r.has("briefs", after[-1]), what=reader.name)
        finally:
            await stop_all(readers)
        for reader in readers:
            _check_after_loss(reader, before, after)
            assert reader.connections == 1
        for since in (before[0], before[-1]):
            assert await _resume(server, since) == ([], False)


HISTORY = 5


@pytest.fixture
async def short_history_server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with running(LiveServer(settings.with_(history_size=HISTORY))) as server:
        yield server


async def test_resume_at_the_edge_of_the_retained_window(
    short_history_server: LiveServer,
) -> None:
    server = short_history_server
    origin = await position(server.url)
    watcher = Checker([server.ws_url], since={"briefs": origin}, name="watcher")
    await start_all([watcher])
    try:
        await _publish(server, HISTORY, "first")
        await wait_for(lambda: len(watcher.ids["briefs"]) == HISTORY, what="the watcher")
        first = list(watcher.ids["briefs"])
        # Nothing trimmed yet: even the origin is a servable position.
        assert await _resume(server, origin) == (first, True)
        await _publish(server, 3, "more")
        await wait_for(lambda: len(watcher.ids["briefs"]) == HISTORY + 3, what="the watcher")
    finally:
        await stop_all([watcher])
    ids = watcher.ids["briefs"]
    watcher.check("briefs", ids)
    # A reader who missed exactly HISTORY events resumes: exactly the suffix.
    inside = ids[-HISTORY - 1]
    assert await _resume(server, inside) == (ids[-HISTORY:], True)
    # One more missed event is beyond the window: refused, nothing replayed.
    outside = ids[-HISTORY - 2]
    assert await _resume(server, outside) == ([], False)
    assert await _resume(server, ids[0]) == ([], False)
    assert await _resume(server, origin) == ([], False)  # history was trimmed since
    assert await _resume(server, ids[-1]) == ([], True)


# -- the replay/live race --------------------------------------------------------------


@pytest.fixture
async def race_server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with running(LiveServer(settings.with_(history_size=1_000_000))) as server:
        yield server


class FlatOut:
    """Appends events as fast as Redis takes them, from two concurrent writers."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.issued: list[str] = []
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._write(w)) for w in range(2)]

    async def stop(self) -> None:
        """Let each writer finish its append (a cancelled one may be written or not)."""
        self._stopping = True
        await asyncio.wait_for(asyncio.gather(*self._tasks), TIMEOUT)
        self._tasks = []

    async def _write(self, writer: int) -> None:
        n = 0
        while not self._stopping:
            event_id = await self._log.append(
                "briefs", "brief.published", {"id": f"w{writer}-{n}", "text": "flat out"}
            )
            self.issued.append(str(event_id))
            n += 1


@given(data=st.data())
@hypothesis_settings(
    max_examples=15,
    deadline=None,
    database=None,
    # No shrinking: each example is a timed race, replaying it smaller proves little and
    # would multiply the test's time.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_resumes_racing_a_flat_out_publisher_get_exactly_the_suffix(
    race_server: LiveServer, data: st.DataObject
) -> None:
    server = race_server
    publisher = FlatOut(server.services.log)
    publisher.start()
    readers: list[tuple[Checker, str | None]] = []
    try:
        await wait_for(lambda: len(publisher.issued) >= 20, what="some events")
        plan = data.draw(
            st.lists(
                st.tuples(st.one_of(st.none(), st.integers(0, 200)), st.floats(0, 0.05)),
                min_size=1,
                max_size=10,
            ),
            label="(events back, delay) per reader",
        )

        async def join(back: int | None, delay: float) -> None:
            await asyncio.sleep(delay)
            since = None
            if back is not None:
                since = publisher.issued[max(0, len(publisher.issued) - 1 - back)]
            reader = Checker(
                [server.ws_url],
                since={"briefs": since} if since else None,
                name=f"since={since}",
            )
            readers.append((reader, since))
            reader.start()
            await wait_for(reader.live.is_set, what=f"{reader.name} to be subscribed")

        await asyncio.gather(*(join(back, delay) for back, delay in plan))
        mark = len(publisher.issued)
        await wait_for(lambda: len(publisher.issued) >= mark + 50, what="more events")
    finally:
        await publisher.stop()
    truth = await history_ids(server.settings.redis_url or "", server.settings.redis_prefix)
    try:
        await asyncio.gather(
            *(
                wait_for(lambda r=r: r.has("briefs", truth[-1]), what=f"{r.name} to catch up")
                for r, _ in readers
            )
        )
    finally:
        await stop_all([r for r, _ in readers])
    position = {event_id: n for n, event_id in enumerate(truth)}
    for reader, since in readers:
        got = reader.ids["briefs"]
        if since is not None:
            reader.check("briefs", truth[position[since] + 1 :])
        else:
            # Without since: some suffix, from wherever the reader joined.
            assert got, reader.name
            reader.check("briefs", truth[position[got[0]] :])
        assert reader.connections == 1
