"""Redis dies (SIGKILL) or hangs (SIGSTOP) while editors publish and readers watch.

While Redis is away the API answers 503 JSON with Retry-After within 2 s, connected readers
stay connected, and once Redis is back every acknowledged brief reaches every reader exactly
once, in order, within 3 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time

import httpx

from livefeed.settings import Settings
from tests.conftest import LiveServer, RedisServer
from tests.helpers import FACTOR, TIMEOUT, auth, running
from tests.reliability.fault_proxy import FaultProxy
from tests.reliability.toolkit import Answer, ConnectionKiller, history, report, watching

READERS = 5
RATE = 50.0  # briefs per second, through the API


def _check_outage_answers(answers: list[Answer]) -> list[float]:
    """Every answer is a 201 or a 503 JSON with Retry-After; the latencies of the 503s."""
    wrong = [a for a in answers if a.status not in (201, 503)]
    assert not wrong, f"answers other than 201/503 while Redis was away: {wrong[:5]}"
    unavailable = [a for a in answers if a.status == 503]
    assert unavailable, "no request met the outage: the test did not test anything"
    for answer in unavailable:
        assert answer.retry_after is not None, answer
        assert '"code"' in answer.error, answer
    return [a.latency for a in unavailable]


async def test_redis_sigkilled_mid_publish_loses_no_acknowledged_brief(
    own_server: LiveServer, own_redis: RedisServer
) -> None:
    hub = own_server.services.hub
    async with watching(
        own_server, own_redis.url, readers=READERS, rate=RATE, keep_data=True
    ) as watch:
        publisher, readers = watch.publisher, watch.readers
        publisher.start(seconds=6.0)
        await asyncio.sleep(2.0)
        own_redis.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.sleep(1.5)
        own_redis.start()  # same port, same data dir: the AOF is replayed
        back_at = time.monotonic()
        survived = {
            event_id
            for event_id, _ in await history(own_redis.url, own_server.settings.redis_prefix)
        }
        truth_ids = await watch.settle(timeout=3.0 + TIMEOUT)
    truth = watch.truth

    # Nothing acknowledged was lost by Redis (AOF), and readers got exactly the stream.
    published = {data["id"] for _, data in truth}
    acknowledged = publisher.acknowledged()
    lost = [b for b in acknowledged if b not in published]
    assert not lost, f"{len(lost)} acknowledged briefs are not in the stream after the restart"
    watch.check(truth_ids, connections=1)
    for reader in readers:
        assert [d["id"] for d in reader.data["briefs"]] == [d["id"] for _, d in truth]
    assert hub.reconnects >= 1

    # Figures: how fast the API says 503, and how fast readers caught up once Redis was back.
    latencies = _check_outage_answers(publisher.answers)
    assert max(latencies) < 2.0 * FACTOR, f"a 503 took {max(latencies):.2f}s"
    first_new = min(
        (a for a in publisher.answers if a.status == 201 and a.sent_at > back_at),
        key=lambda a: a.sent_at,
    )
    first_new_event = next(e for e, d in truth if d["id"] == first_new.brief_id)
    wanted = [e for e in truth_ids if e in survived] + [first_new_event]
    caught_up = max(r.arrived["briefs"][e] for r in readers for e in wanted) - back_at
    report(
        f"Redis SIGKILL: {publisher.by_status()} answers; 503 latency "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
        f"down {back_at - killed_at:.2f}s; readers caught up {caught_up:.2f}s after Redis "
        f"returned ({len(truth_ids)} events, {len(acknowledged)} acknowledged)"
    )
    assert caught_up < 3.0 * FACTOR, f"readers caught up {caught_up:.2f}s after Redis returned"


async def test_redis_hanging_answers_503_in_time_and_resumes_without_loss(
    own_server: LiveServer, own_redis: RedisServer
) -> None:
    """SIGSTOP: connections open but no answer — the timeout path, not a refused connection."""
    assert own_redis.process is not None
    pid = own_redis.process.pid
    async with watching(own_server, own_redis.url, readers=3, rate=20.0) as watch:
        publisher, readers = watch.publisher, watch.readers
        publisher.start(seconds=6.0)
        await asyncio.sleep(1.5)
        os.kill(pid, signal.SIGSTOP)
        try:
            async with httpx.AsyncClient(base_url=own_server.url, timeout=TIMEOUT) as api:
                started = time.monotonic()
                ready = await api.get("/readyz")
                readyz_latency = time.monotonic() - started
            await asyncio.sleep(2.5)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        truth_ids = await watch.settle(timeout=3.0 + TIMEOUT)
        caught_up = max(r.arrived["briefs"][truth_ids[-1]] for r in readers) - resumed_at
    assert ready.status_code == 503 and "redis" in ready.json()["failing"], ready.text
    assert readyz_latency < 2.0 * FACTOR
    latencies = _check_outage_answers(publisher.answers)
    assert max(latencies) < 2.0 * FACTOR, f"a 503 took {max(latencies):.2f}s"
    published = {d["id"] for _, d in watch.truth}
    assert not [b for b in publisher.acknowledged() if b not in published]
    watch.check(truth_ids, connections=1)
    # A 503 after a timeout does not say the write did not happen: Redis may run it later.
    late = len(published) - len(publisher.acknowledged())
    report(
        f"Redis SIGSTOP: {publisher.by_status()} answers; 503 latency median "
        f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
        f"/readyz {readyz_latency * 1000:.0f} ms; {late} briefs answered 503 were written anyway; "
        f"last event reached every reader {caught_up:.2f}s after SIGCONT"
    )


async def test_a_burst_of_writes_is_not_answered_503_while_redis_is_up(
    own_server: LiveServer,
) -> None:
    """250 editors' requests at the same moment: slower answers are fine, "Redis is
    unavailable" is not (it is not, and a 503 makes editors retry and publish twice)."""
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(base_url=own_server.url, timeout=TIMEOUT, limits=limits) as api:
        answers = await asyncio.gather(
            *(
                api.post("/api/briefs", json={"text": f"burst {i}"}, headers=auth(own_server.token))
                for i in range(250)
            )
        )
    statuses: dict[int, int] = {}
    for answer in answers:
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    assert statuses == {201: 250}, f"answers by status: {statuses}"


async def test_connections_cut_mid_write_lose_nothing(
    own_server: LiveServer, own_redis: RedisServer
) -> None:
    """Redis drops the app's command connections (CLIENT KILL TYPE normal every 20 ms) while
    editors publish: every write is answered (201, or 503 when its outcome is unknown), every
    201 is in the stream, and readers get the stream exactly."""
    async with (
        watching(own_server, own_redis.url, readers=3, rate=100.0) as watch,
        ConnectionKiller(own_redis.url, "normal") as killer,
    ):
        publisher = watch.publisher
        publisher.start(seconds=3.0)
        kills = await killer.every(0.02, until=lambda: publisher.done)
        truth_ids = await watch.settle()
    watch.check(truth_ids)
    published = {d["id"] for _, d in watch.truth}
    assert not [b for b in publisher.acknowledged() if b not in published]
    report(f"command connections cut {kills} times: answers {publisher.by_status()}")
    wrong = [a for a in publisher.answers if a.status not in (201, 503)]
    assert len(wrong) == 0, f"unexpected answers: {wrong[:3]}"


async def test_a_write_whose_answer_is_lost_is_not_reported_as_a_conflict(
    settings: Settings, proxy: FaultProxy, own_redis: RedisServer
) -> None:
    """Redis runs the write, then the connection breaks before its answer arrives: the
    client cannot know it succeeded. The API may say 201 or 503 — not 409 "published
    before" about the brief the request itself just published."""
    async with (
        running(LiveServer(settings.with_(redis_url=proxy.url))) as server,
        server.client() as api,
    ):
        answers = []
        for i in range(5):
            proxy.cut_after("EVALSHA")
            response = await api.post(
                "/api/briefs", json={"text": f"answer lost {i}"}, headers=auth(server.token)
            )
            answers.append((response.status_code, response.text[:200]))
    assert proxy.cuts == 5
    published = {d["text"] for _, d in await history(own_redis.url, settings.redis_prefix)}
    assert published == {f"answer lost {i}" for i in range(5)}  # Redis ran every one
    wrong = [a for a in answers if a[0] not in (201, 503)]
    assert not wrong, f"answers for briefs that were published: {wrong}"
