"""Redis ingest as other services use it: XADD and PUBLISH against real livefeed processes.

Every test writes to Redis with a client of its own, as a wire feed or a CMS would, and
checks what an operator would: the briefs listed by the API, the events a reader gets on
a WebSocket (and their order), and the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from websockets.exceptions import ConnectionClosed

from livefeed import limits
from tests.conftest import LiveServer, RedisServer
from tests.helpers import FACTOR, TIMEOUT, auth, subscribe, wait_for

TOKEN = "t"
BULK = 1_000
PUBLISHES = 200
# A standby takes over once the dead holder's lease expired and it polled again.
TAKEOVER = (limits.INGEST_LEASE_TTL + limits.INGEST_STANDBY_POLL) * FACTOR + TIMEOUT


@pytest.fixture
def env(redis_server: RedisServer, prefix: str) -> dict[str, str]:
    return {
        "LIVEFEED_REDIS_URL": redis_server.url,
        "LIVEFEED_REDIS_PREFIX": prefix,
        "LIVEFEED_EDITOR_TOKEN": TOKEN,
        "LIVEFEED_DRAIN_SECONDS": "0.2",
    }


@pytest.fixture
async def service(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A Redis client of a foreign service (bytes in, bytes out)."""
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


def brief(text: str, **extra: Any) -> bytes:
    return json.dumps({"text": text, **extra}).encode()


async def start_many(livefeed_process, env: dict[str, str], n: int) -> list[Any]:
    return list(await asyncio.gather(*(livefeed_process(env=env) for _ in range(n))))


async def publish_to_all(service: Redis, prefix: str, procs: list[Any], payload: bytes) -> None:
    """PUBLISH on the ingest channel, which every one of ``procs`` is subscribed to."""
    assert await service.publish(f"{prefix}ingest", payload) == len(procs)


async def xadd_all(redis: Redis, stream: str, entries: list[dict[bytes | str, bytes]]) -> list[str]:
    """XADD every entry, in order; their stream entry ids."""
    ids: list[str] = []
    for start in range(0, len(entries), 200):
        async with redis.pipeline(transaction=False) as pipe:
            for fields in entries[start : start + 200]:
                pipe.xadd(stream, fields)
            ids += [i.decode() for i in await pipe.execute()]
    return ids


async def listed(url: str) -> list[dict[str, Any]]:
    """Every brief the API lists, newest first, read page by page with ``before``."""
    items: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as api:
        while True:
            params: dict[str, Any] = {"limit": limits.LIST_LIMIT_MAX}
            if items:
                params["before"] = items[-1]["id"]
            response = await api.get("/api/briefs", params=params)
            assert response.status_code == 200, response.text
            page = response.json()["items"]
            items += page
            if len(page) < limits.LIST_LIMIT_MAX:
                return items


async def lease_holder(redis: Redis, prefix: str, procs: list[Any]) -> Any:
    """The process whose consumer holds the ingest lease (its name carries its pid)."""
    key = f"{prefix}ingest:lease"

    async def held() -> bool:
        return await redis.get(key) is not None

    await wait_for(held, what="a process to take the ingest lease")
    consumer = (await redis.get(key)).decode()
    pid = int(consumer.rsplit("-", 2)[1])  # <hostname>-<pid>-<hex>
    [holder] = [p for p in procs if p.process.pid == pid]
    assert f"consuming the ingest stream (consumer {consumer})" in holder.output
    return holder


class Reader:
    """A WebSocket reader subscribed to ``briefs``, collecting what it is sent."""

    def __init__(self, http_url: str) -> None:
        self.url = http_url.replace("http://", "ws://") + "/ws"
        self.frames: list[dict[str, Any]] = []
        self.published: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # time.perf_counter() of each brief.published
        self.last_id: str | None = None
        self.event_ids: list[str] = []
        self.moves: list[int] = []  # how many briefs it had each time it resumed
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reader:
        self._ws = await websockets.connect(self.url, max_queue=None)
        await subscribe(self._ws, "briefs")
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await self._task
        await self._ws.close()

    async def _read(self) -> None:
        async for raw in self._ws:
            self._take(json.loads(raw))

    def _take(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        if frame.get("type") == "brief.published":
            self.arrived.append(time.perf_counter())
            self.published.append(frame["data"])
            self.event_ids.append(frame["id"])
            self.last_id = frame["id"]

    async def move_to(self, http_url: str) -> None:
        """Reconnect (to the same or another process) and resume from the last event seen,
        as a browser does when its connection or its server goes away."""
        await self.__aexit__()
        self.moves.append(len(self.published))
        self.url = http_url.replace("http://", "ws://") + "/ws"
        self._ws = await websockets.connect(self.url, max_queue=None)
        frames = await subscribe(self._ws, "briefs", since=self.last_id)
        assert frames[-1]["recovered"] is True, frames[-1]
        for frame in frames[:-1]:
            self._take(frame)
        self._task = asyncio.create_task(self._read())

    @property
    def texts(self) -> list[str]:
        return [b["text"] for b in self.published]

    def distinct(self) -> list[dict[str, Any]]:
        """The briefs received, each event counted once even if it was delivered twice."""
        seen: set[str] = set()
        briefs = []
        for event_id, data in zip(self.event_ids, self.published, strict=True):
            if event_id not in seen:
                seen.add(event_id)
                briefs.append(data)
        return briefs

    def first_difference(self, expected: list[str]) -> str:
        """Where the texts received differ from ``expected``, with the events around it."""
        texts = self.texts
        at = next((i for i, t in enumerate(texts) if i >= len(expected) or t != expected[i]), None)
        if at is None:
            return f"got {len(texts)} of {len(expected)} texts"
        near = range(max(0, at - 2), min(len(texts), at + 3))
        events = [(i, texts[i], self.published[i]["id"], self.event_ids[i]) for i in near]
        seen = Counter(b["id"] for b in self.published)
        twice = [i for i, n in seen.items() if n > 1]
        resumed = max((m for m in self.moves if m <= at), default=None)
        return (
            f"at {at}: expected {expected[at] if at < len(expected) else None!r}; events around "
            f"it (index, text, brief id, event id): {events}; {len(twice)} brief ids received "
            f"more than once; {len(texts)} received; the reader last resumed at {resumed}"
        )

    async def wait_for_count(self, n: int, timeout: float = TIMEOUT) -> None:
        def done() -> bool:
            assert self._task is not None
            if self._task.done():
                raise AssertionError(f"reader stopped: {self._task!r}, frames {self.frames[-3:]}")
            return len(self.published) >= n

        await wait_for(done, timeout, f"{n} briefs on the reader (got {len(self.published)})")

    async def wait_for_text(self, text: str, timeout: float = TIMEOUT) -> None:
        await wait_for(lambda: text in self.texts, timeout, f"brief {text!r} on the reader")


async def assert_drained(redis: Redis, prefix: str) -> None:
    """Nothing left in the ingest stream and nothing pending in the consumer group."""
    stream = f"{prefix}ingest"
    assert await redis.xlen(stream) == 0
    pending = await redis.xpending(stream, limits.INGEST_GROUP)
    assert pending["pending"] == 0, pending


def assert_exactly_once_in_order(reader: Reader, briefs: list[dict[str, Any]], ids: list[str]):
    """The reader got n0..n{BULK-1} once each in stream order; the API lists exactly those."""
    expected = [f"n{i}" for i in range(BULK)]
    assert reader.texts == expected, reader.first_difference(expected)
    assert [b["id"] for b in reader.published] == ["i" + i for i in ids]
    assert len(briefs) == BULK
    assert len({b["id"] for b in briefs}) == BULK
    assert sorted(b["text"] for b in briefs) == sorted(expected)
    assert {b["id"] for b in briefs} == {"i" + i for i in ids}
    # Published in stream order: publish times never go backwards along the stream.
    by_text = {b["text"]: b["published_at"] for b in briefs}
    times = [by_text[t] for t in expected]
    assert times == sorted(times)


# -- the stream: exactly once, in order, across processes and crashes ----------------------


async def test_three_processes_publish_a_thousand_stream_entries_once_each_in_order(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    procs = await start_many(livefeed_process, env, 3)
    holder = await lease_holder(service, prefix, procs)
    standby = next(p for p in procs if p is not holder)
    async with Reader(standby.url) as reader:
        began = time.perf_counter()
        ids = await xadd_all(
            service, f"{prefix}ingest", [{"brief": brief(f"n{i}")} for i in range(BULK)]
        )
        await reader.wait_for_count(BULK, timeout=60 * FACTOR)
        took = reader.arrived[-1] - began
        print(f"\n{BULK} stream entries published to a reader in {took:.2f} s")
        briefs = await listed(procs[0].url)
        assert_exactly_once_in_order(reader, briefs, ids)
        await assert_drained(service, prefix)
        # Only the lease holder consumed: the standbys never published anything.
        for proc in procs:
            if proc is not holder:
                assert "ingest stream: published" not in proc.output


async def test_killing_the_lease_holder_midway_loses_nothing_and_duplicates_nothing(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    procs = await start_many(livefeed_process, env, 3)
    holder = await lease_holder(service, prefix, procs)
    survivors = [p for p in procs if p is not holder]
    async with Reader(survivors[0].url) as reader:
        ids = await xadd_all(
            service, f"{prefix}ingest", [{"brief": brief(f"n{i}")} for i in range(BULK)]
        )
        await reader.wait_for_count(50, timeout=30 * FACTOR)
        holder.stop(signal.SIGKILL)
        at_kill = len(reader.published)
        killed = time.perf_counter()
        left = await service.xlen(f"{prefix}ingest")  # settled entries are deleted
        pending = (await service.xpending(f"{prefix}ingest", limits.INGEST_GROUP))["pending"]
        print(
            f"\nSIGKILLed the lease holder after {at_kill} of {BULK} briefs reached the reader;"
            f" {left} entries unsettled, {pending} of them pending with the dead consumer"
        )
        assert left > 0, "the holder finished before it was killed: nothing left to take over"
        await reader.wait_for_count(BULK, timeout=TAKEOVER + 30 * FACTOR)
        print(f"the rest was published {reader.arrived[-1] - killed:.1f} s after the kill")
        new_holder = await lease_holder(service, prefix, survivors)
        assert new_holder in survivors
        briefs = await listed(survivors[1].url)
        assert_exactly_once_in_order(reader, briefs, ids)
        await assert_drained(service, prefix)


async def test_a_rolling_restart_under_load_hands_the_stream_over_at_once_each_time(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    """SIGTERM the lease holder four times in a row while a feed keeps flowing, as a rolling
    deploy does: each one exits cleanly and releases its lease, the next takes over at
    once (not after the lease TTL), and every entry is published once, in order."""
    rounds = 4
    procs = await start_many(livefeed_process, env, rounds + 1)
    stream = f"{prefix}ingest"
    ids: list[str] = []
    feeding = True

    async def feed() -> None:
        """A wire feed that keeps a backlog of a few hundred entries until told to stop."""

        async def low() -> bool:
            return not feeding or await service.xlen(stream) < 400

        while True:
            await wait_for(low, 60 * FACTOR, "the backlog to shrink")
            if not feeding or len(ids) >= 20_000:  # a holder that never stops eats it all
                return
            batch = [{"brief": brief(f"r{len(ids) + i}")} for i in range(200)]
            ids.extend(await xadd_all(service, stream, batch))

    holder = await lease_holder(service, prefix, procs)
    alive = [p for p in procs if p is not holder] + [holder]
    async with Reader(alive[0].url) as reader:
        on = alive[0]
        feeder = asyncio.create_task(feed())
        try:
            for n in range(rounds):
                holder = await lease_holder(service, prefix, alive)
                alive.remove(holder)
                if on is holder:
                    on = alive[0]
                    await reader.move_to(on.url)
                await reader.wait_for_count(len(reader.published) + 50, 30 * FACTOR)
                left = await service.xlen(stream)
                stopped = time.perf_counter()
                # In a thread: the feed keeps flowing while the process shuts down.
                code = await asyncio.to_thread(holder.stop, signal.SIGTERM)
                output = holder.output
                _, shutdown, after = output.partition("Waiting for application shutdown")
                assert code == 0, (
                    f"round {n + 1}: the lease holder did not exit on SIGTERM (exit status {code}; "
                    "-9 is the fixture's SIGKILL 20 s later); after its log said 'Waiting for "
                    f"application shutdown' it went on to publish {after.count('published brief')}"
                    f" more briefs (shutdown began: {bool(shutdown)}). Its last lines:\n"
                    + "\n".join(output.splitlines()[-4:])
                )

                async def taken_over() -> bool:
                    consumer = await service.get(f"{prefix}ingest:lease")
                    return consumer is not None and any(
                        f"-{p.process.pid}-" in consumer.decode() for p in alive
                    )

                await wait_for(taken_over, TAKEOVER, "a standby to take the lease")
                handover = time.perf_counter() - stopped
                print(
                    f"\nround {n + 1}: SIGTERM with {left} entries waiting, handed over in "
                    f"{handover:.1f} s"
                )
                assert left > 0, f"round {n + 1}: the holder was idle when it was stopped"
                # Released, not expired: an expiring lease would take until its TTL ran out.
                assert handover < limits.INGEST_LEASE_TTL - limits.INGEST_LEASE_RENEW
        finally:
            feeding = False
            await feeder
        await reader.wait_for_count(len(ids), 30 * FACTOR)
    redelivered = len(reader.published) - len(reader.distinct())
    print(f"{len(ids)} entries fed during the restarts; {redelivered} events redelivered")
    # Every entry became one event (one brief.published), in stream order. (An event that
    # reaches a resuming reader twice is a delivery fault, not a second publication: see
    # test_a_reader_resuming_while_a_feed_flows_gets_each_event_once.)
    briefs = reader.distinct()
    expected = [f"r{i}" for i in range(len(ids))]
    assert [b["text"] for b in briefs] == expected, reader.first_difference(expected)
    assert [b["id"] for b in briefs] == ["i" + i for i in ids]
    await assert_drained(service, prefix)


async def test_stopping_a_busy_stream_consumer_returns_promptly(
    live_server: LiveServer, service: Redis, prefix: str
) -> None:
    """What a clean SIGTERM relies on: the lifespan's ``Ingest.stop()`` ends the consumer even
    while it is busy publishing, every time (here: stopped and started again 30 times)."""
    ingest = live_server.services.ingest
    stream = f"{prefix}ingest"
    for attempt in range(30):
        if await service.xlen(stream) < 1_000:  # keep it busy
            await xadd_all(service, stream, [{"brief": brief(f"b{i}")} for i in range(2_000)])
        target = ingest.counts["published"] + 20
        await wait_for(
            lambda t=target: ingest.counts["published"] >= t,
            what=f"the consumer to be busy (after {attempt} stops; {ingest.counts})",
        )
        assert await service.xlen(stream) > 0, "the stream ran dry: the consumer was idle"
        at_stop = ingest.counts["published"]
        # Not wait_for(): cancelling stop() on a timeout would cancel the consumer once more.
        stopping = asyncio.create_task(ingest.stop())
        await asyncio.wait({stopping}, timeout=5 * FACTOR)
        if not stopping.done():
            after = ingest.counts["published"] - at_stop
            for task in asyncio.all_tasks():  # end it anyway, so the server can stop
                while task.get_name().startswith("livefeed-ingest") and not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.1)
            await stopping
            pytest.fail(
                f"stop {attempt + 1}: Ingest.stop() had not returned 5 s later; the consumer "
                f"task went on and published {after} more briefs (its cancellation was lost)"
            )
        await stopping
        ingest.start()


async def test_a_reader_resuming_while_a_feed_flows_gets_each_event_once(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    """A browser that reconnects (``since`` = the last event it saw) while a wire feed is
    flowing must show every brief once: nothing missed, nothing twice."""
    proc = await livefeed_process(env=env)
    count = 4_000
    async with Reader(proc.url) as reader:
        ids = await xadd_all(
            service, f"{prefix}ingest", [{"brief": brief(f"f{i}")} for i in range(count)]
        )
        while len(reader.published) < count:
            await reader.move_to(proc.url)  # reconnect and resume
            target = min(count, len(reader.published) + 20)
            await reader.wait_for_count(target, 30 * FACTOR)
        print(f"\nthe reader resumed {len(reader.moves)} times while {count} briefs flowed")
    expected = [f"f{i}" for i in range(count)]
    assert reader.texts == expected, reader.first_difference(expected)
    assert [b["id"] for b in reader.published] == ["i" + i for i in ids]


async def test_entries_added_while_no_livefeed_runs_are_published_when_one_starts(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    stream = f"{prefix}ingest"
    # Before any livefeed ever ran: there is no consumer group yet.
    await xadd_all(service, stream, [{"brief": brief(f"early{i}")} for i in range(5)])
    first = await livefeed_process(env=env)

    async def all_early_listed() -> bool:
        return len(await listed(first.url)) >= 5

    await wait_for(all_early_listed, what="the entries added before livefeed ever ran")
    briefs = list(reversed(await listed(first.url)))
    assert sorted(b["text"] for b in briefs) == [f"early{i}" for i in range(5)]
    times = {b["text"]: b["published_at"] for b in briefs}
    assert [times[f"early{i}"] for i in range(5)] == sorted(times.values())
    async with httpx.AsyncClient(base_url=first.url) as api:
        position = (await api.get("/api/briefs")).json()["last_event_id"]
    assert first.stop(signal.SIGTERM) == 0, first.output

    # Livefeed ran and is down again: entries wait in the stream, behind the group's cursor.
    await xadd_all(service, stream, [{"brief": brief(f"late{i}")} for i in range(5)])
    second = await livefeed_process(env=env)
    async with websockets.connect(second.url.replace("http://", "ws://") + "/ws") as ws:
        frames = await subscribe(ws, "briefs", since=position)
        # By event id: one event delivered twice is the resume test's business, not this one.
        got = {f["id"]: f["data"]["text"] for f in frames if f["type"] == "brief.published"}
        while len(got) < 5:  # the rest, live
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if frame["type"] == "brief.published":
                got.setdefault(frame["id"], frame["data"]["text"])
    assert list(got.values()) == [f"late{i}" for i in range(5)], frames
    assert len(await listed(second.url)) == 10
    await assert_drained(service, prefix)


# -- pub/sub and idempotency ------------------------------------------------------------


async def test_three_processes_publish_two_hundred_publishes_once_each(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    procs = await start_many(livefeed_process, env, 3)
    async with Reader(procs[0].url) as reader:
        for i in range(PUBLISHES):
            await publish_to_all(service, prefix, procs, brief(f"p{i}"))
        await reader.wait_for_count(PUBLISHES, timeout=30 * FACTOR)
        # A last one: once it is through, every earlier message has been claimed and handled.
        await publish_to_all(service, prefix, procs, brief("end"))
        await reader.wait_for_text("end")
        briefs = await listed(procs[1].url)
    texts = [b["text"] for b in briefs]
    assert len(texts) == PUBLISHES + 1, Counter(texts).most_common(3)
    assert sorted(texts) == sorted([f"p{i}" for i in range(PUBLISHES)] + ["end"])
    assert len(reader.published) == PUBLISHES + 1
    # What each process logged: the claims spread the work, and the total is exact.
    shares = [p.output.count("ingest pubsub: published brief") for p in procs]
    print(f"\nbriefs published by each of the three processes: {shares}")
    assert sum(shares) == PUBLISHES + 1
    assert await service.xlen(f"{prefix}ingest:dead") == 0


async def test_the_same_payload_published_twice_without_an_id_gives_two_briefs(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    """Only an ``id`` makes two messages one brief (SPEC); without one, each message counts,
    through pub/sub as through the stream - a live sports feed may well say "Goal!" twice."""
    procs = await start_many(livefeed_process, env, 2)
    key = f"{prefix}ingest"
    async with Reader(procs[0].url) as reader:
        for n in (1, 2):
            await service.xadd(key, {"brief": brief("Goal!")})
            await reader.wait_for_count(n)
        assert await service.publish(key, brief("Goal!")) == 2
        await reader.wait_for_count(3)
        assert await service.publish(key, brief("Goal!")) == 2  # a new message
        assert await service.publish(key, brief("end")) == 2
        await reader.wait_for_count(5)
    # Fire-and-forget promises no order across processes (two processes may each publish
    # one of the last two messages): count them, do not order them.
    assert sorted(reader.texts) == sorted(["Goal!"] * 4 + ["end"]), (
        "the second identical PUBLISH was dropped without a trace: no brief, no log line, no "
        "count (ingest.py claims pub/sub messages by payload digest for INGEST_CLAIM_TTL)"
    )


async def test_the_same_id_through_both_paths_publishes_one_brief(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    procs = await start_many(livefeed_process, env, 3)
    key = f"{prefix}ingest"
    async with Reader(procs[0].url) as reader:
        # "wire-1" comes through the stream first, "wire-2" through pub/sub first.
        await service.xadd(key, {"brief": brief("first", id="wire-1")})
        await reader.wait_for_text("first")
        assert await service.publish(key, brief("first", id="wire-2")) == 3
        await reader.wait_for_count(2)
        for brief_id in ("wire-1", "wire-2"):
            for text in ("first", "first", "changed"):  # the same payload twice, then another
                await service.xadd(key, {"brief": brief(text, id=brief_id)})
                assert await service.publish(key, brief(text, id=brief_id)) == 3
        await service.xadd(key, {"brief": brief("end of stream")})
        assert await service.publish(key, brief("end of pubsub")) == 3
        await reader.wait_for_text("end of stream")
        await reader.wait_for_text("end of pubsub")
        briefs = await listed(procs[2].url)
    by_id = Counter(b["id"] for b in reader.published)
    assert by_id["wire-1"] == 1 and by_id["wire-2"] == 1, reader.published
    assert len(briefs) == 4, briefs
    assert {b["id"]: b["text"] for b in briefs if b["id"].startswith("wire-")} == {
        "wire-1": "first",
        "wire-2": "first",
    }
    assert await service.xlen(f"{prefix}ingest:dead") == 0

    # A retracted brief stays retracted when a service sends its id again.
    async with httpx.AsyncClient(base_url=procs[0].url) as api, Reader(procs[1].url) as reader:
        response = await api.delete("/api/briefs/wire-1", headers=auth(TOKEN))
        assert response.status_code == 204, response.text
        await service.xadd(key, {"brief": brief("resent", id="wire-1")})
        assert await service.publish(key, brief("resent again", id="wire-1")) == 3
        await service.xadd(key, {"brief": brief("end of stream 2")})
        assert await service.publish(key, brief("end of pubsub 2")) == 3
        await reader.wait_for_text("end of stream 2")
        await reader.wait_for_text("end of pubsub 2")
    assert "wire-1" not in [b["id"] for b in reader.published]
    assert "wire-1" not in [b["id"] for b in await listed(procs[0].url)]


# -- validation and dead letters --------------------------------------------------------

_BIG = 20_000  # bytes: over INGEST_PAYLOAD_MAX


def _bad_payloads() -> list[tuple[str, bytes]]:
    """Kinds of bad ``brief`` payloads a service could send, each with a name."""
    depth = 8_000  # nesting that stays under 16 KiB
    return [
        ("bad JSON", b'{"text": "unterminated'),
        ("empty payload", b""),
        ("JSON array", b'["a brief"]'),
        ("JSON null", b"null"),
        ("JSON number", b"42"),
        ("JSON string", b'"a brief"'),
        ("missing text", b'{"breaking": true}'),
        ("empty text", b'{"text": ""}'),
        ("whitespace text", b'{"text": " \\t  \\u00a0 "}'),
        ("501-character text", brief("x" * (limits.BRIEF_TEXT_MAX + 1))),
        ("unknown field", brief("ok", author="wire")),
        ("breaking is a string", brief("ok", breaking="yes")),
        ("text is a number", b'{"text": 5}'),
        ("article is not a slug", brief("ok", article="Not A Slug!")),
        ("article is a number", brief("ok", article=5)),
        ("id with a space", brief("ok", id="bad id")),
        ("empty id", brief("ok", id="")),
        ("id too long", brief("ok", id="x" * 65)),
        ("over 16 KiB", b'{"text": "big"' + b" " * _BIG + b"}"),
        ("invalid UTF-8", b'{"text": "caf\xe9"}'),
        ("bidi override", brief("abc\u202edef")),
        ("NUL character", brief("a\x00b")),
        ("newline in text", brief("two\nlines")),
        ("lone surrogate", b'{"text": "\\ud800"}'),
        ("nesting depth bomb", b'{"text": ' + b"[" * depth + b"]" * depth + b"}"),
        ("NaN text", b'{"text": NaN}'),
    ]


def _good(i: int) -> tuple[bytes, str]:
    """A valid payload and the text it publishes; a few sit right at the limits."""
    text = f"g{i}"
    if i == 1:
        text = text + "x" * (limits.BRIEF_TEXT_MAX - len(text))  # exactly 500 characters
    if i == 2:
        start = b'{"text": "g2"'
        return start + b" " * (limits.INGEST_PAYLOAD_MAX - len(start) - 1) + b"}", text
    if i == 3:
        return brief(text, breaking=True, article="some-article", id=f"own-{i}"), text
    if i == 4:
        return brief("  " + text + " e\u0301 "), text + " \u00e9"  # trimmed, NFC
    return brief(text), text


async def test_bad_stream_entries_are_dead_lettered_once_and_never_block_good_ones(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    proc = await livefeed_process(env=env)
    bad = [(name, {"brief": payload}, payload) for name, payload in _bad_payloads()]
    good_json = brief("fine")
    bad += [
        ("entry without a brief field", {"body": good_json}, None),
        ("entry with an extra field", {"brief": good_json, "priority": b"high"}, good_json),
    ]
    entries: list[dict[bytes | str, bytes]] = []
    expected: list[str] = []
    for i, (_name, fields, _payload) in enumerate(bad):
        payload, text = _good(i)
        entries += [{"brief": payload}, fields]
        expected.append(text)
    entries.append({"brief": brief("last")})
    expected.append("last")

    async with Reader(proc.url) as reader:
        await xadd_all(service, f"{prefix}ingest", entries)
        await reader.wait_for_text("last", timeout=30 * FACTOR)
    assert reader.texts == expected
    assert [b["id"] for b in reader.published][3] == "own-3"
    assert reader.published[3]["breaking"] is True
    assert reader.published[3]["article"] == "some-article"

    dead = await service.xrange(f"{prefix}ingest:dead")
    assert len(dead) == len(bad), [d[b"reason"] for _, d in dead]
    report = []
    for (name, _fields, payload), (_id, letter) in zip(bad, dead, strict=True):
        assert set(letter) == {b"reason", b"payload", b"source"}, name
        assert letter[b"source"] == b"stream", name
        reason = letter[b"reason"].decode()
        assert reason.strip(), name
        if payload is not None:
            assert letter[b"payload"] == payload, name
        else:
            assert good_json in letter[b"payload"], name
        report.append(f"  {name}: {reason[:90]}")
    print("\ndead-letter reasons:\n" + "\n".join(report))
    assert proc.output.count("ingest stream: dead-lettered a payload") == len(bad)
    async with httpx.AsyncClient(base_url=proc.url) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["ingest"] == "ok"
    assert len(await listed(proc.url)) == len(expected)
    await assert_drained(service, prefix)


async def test_bad_publishes_are_dead_lettered_once_with_three_processes(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    procs = await start_many(livefeed_process, env, 3)
    names = {"bad JSON", "JSON array", "unknown field", "invalid UTF-8", "over 16 KiB"}
    names |= {"nesting depth bomb", "lone surrogate", "empty text"}
    bad = {payload: name for name, payload in _bad_payloads() if name in names}
    async with Reader(procs[0].url) as reader:
        for i, payload in enumerate(bad):
            await publish_to_all(service, prefix, procs, brief(f"good{i}"))
            await publish_to_all(service, prefix, procs, payload)
        await publish_to_all(service, prefix, procs, brief("end"))
        await reader.wait_for_text("end", timeout=30 * FACTOR)

        async def all_dead() -> bool:
            return await service.xlen(f"{prefix}ingest:dead") >= len(bad)

        await wait_for(all_dead, what="every bad publish in the dead-letter stream")
    assert sorted(reader.texts) == sorted([f"good{i}" for i in range(len(bad))] + ["end"])
    dead = await service.xrange(f"{prefix}ingest:dead")
    assert Counter(d[b"payload"] for _, d in dead) == Counter(list(bad)), [
        (bad.get(d[b"payload"]), d[b"reason"]) for _, d in dead
    ]
    for _id, letter in dead:
        assert letter[b"source"] == b"pubsub"
        assert letter[b"reason"].strip()
    logged = sum(p.output.count("ingest pubsub: dead-lettered a payload") for p in procs)
    assert logged == len(bad)
    for proc in procs:
        async with httpx.AsyncClient(base_url=proc.url) as api:
            assert (await api.get("/readyz")).status_code == 200


async def test_a_failed_publish_is_retried_and_dead_lettered_after_three_attempts(
    live_server: LiveServer, service: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = live_server.services.content
    real_publish = content.publish_brief
    attempts: Counter[str] = Counter()
    fail = {"hiccup": 2, "doomed": 1_000}  # how many times publishing each one fails

    async def flaky_publish(brief_obj: Any, *args: Any, **kwargs: Any) -> Any:
        attempts[brief_obj.text] += 1
        if attempts[brief_obj.text] <= fail.get(brief_obj.text, 0):
            # An error Redis answers: the entry's fault, unlike Redis being unreachable,
            # which is retried without counting (a failover must not dead-letter briefs).
            raise ResponseError("simulated failure of this entry")
        return await real_publish(brief_obj, *args, **kwargs)

    monkeypatch.setattr(content, "publish_brief", flaky_publish)
    texts = ["before", "hiccup", "doomed", "after"]
    async with Reader(live_server.url) as reader:
        ids = await xadd_all(service, f"{prefix}ingest", [{"brief": brief(t)} for t in texts])
        await reader.wait_for_text("after", timeout=30 * FACTOR)
    assert reader.texts == ["before", "hiccup", "after"]
    assert attempts["hiccup"] == 3
    assert attempts["doomed"] == limits.INGEST_ATTEMPTS
    [(_id, letter)] = await service.xrange(f"{prefix}ingest:dead")
    assert letter[b"source"] == b"stream"
    assert letter[b"payload"] == brief("doomed")
    assert f"{limits.INGEST_ATTEMPTS} times" in letter[b"reason"].decode(), letter
    assert [b["id"] for b in reader.published] == ["i" + ids[0], "i" + ids[1], "i" + ids[3]]
    assert live_server.services.ingest.is_running
    await assert_drained(service, prefix)


# -- acceptance: an XADD reaches every open reader within a second ----------------------


async def test_an_xadd_reaches_readers_of_every_process_within_a_second(
    livefeed_process, env: dict[str, str], service: Redis, prefix: str
) -> None:
    procs = await start_many(livefeed_process, env, 2)
    await lease_holder(service, prefix, procs)
    latencies: dict[str, list[float]] = {"XADD": [], "PUBLISH": []}
    async with Reader(procs[0].url) as one, Reader(procs[1].url) as two:
        for i in range(10):
            via = "XADD" if i % 2 == 0 else "PUBLISH"
            text = f"{via} {i}"
            sent = time.perf_counter()
            if via == "XADD":
                await service.xadd(f"{prefix}ingest", {"brief": brief(text)})
            else:
                await service.publish(f"{prefix}ingest", brief(text))
            for reader in (one, two):
                await reader.wait_for_text(text)
                latencies[via].append(reader.arrived[reader.texts.index(text)] - sent)
    for via, values in latencies.items():
        print(
            f"\n{via} -> reader: median {statistics.median(values) * 1000:.1f} ms, "
            f"max {max(values) * 1000:.1f} ms over {len(values)}"
        )
        assert max(values) < 1.0 * FACTOR, values
    assert one.texts == two.texts


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="needs redis-cli")
async def test_redis_cli_xadd_against_the_embedded_redis_reaches_a_reader(
    livefeed_process, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {"LIVEFEED_EDITOR_TOKEN": TOKEN, "LIVEFEED_REDIS_URL": ""}  # default prefix
    proc = await livefeed_process(["--data-dir", str(data_dir)], env)
    url = json.loads((data_dir / "livefeed-redis.json").read_text())["url"]
    where = ["-u", url] if url.startswith("redis://") else ["-s", url.removeprefix("unix://")]
    async with Reader(proc.url) as reader:
        cli = await asyncio.create_subprocess_exec(
            "redis-cli",
            *where,
            "XADD",
            "livefeed:ingest",
            "*",
            "brief",
            '{"text":"Quake hits \u2026 the coast","breaking":true}',
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await cli.communicate()
        assert cli.returncode == 0, out
        entry_id = out.decode().strip()
        await reader.wait_for_count(1)
    [published] = reader.published
    assert published["text"] == "Quake hits \u2026 the coast"
    assert published["breaking"] is True
    assert published["id"] == "i" + entry_id
