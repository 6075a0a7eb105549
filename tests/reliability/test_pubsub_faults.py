"""The hub's pub/sub connection is killed again and again, or goes silent (a deaf listener):
the hub notices, resubscribes, replays from its cursor, and readers see no gap, no duplicate."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.conftest import LiveServer, RedisServer
from tests.helpers import FACTOR, TIMEOUT, Background, wait_for
from tests.reliability.fault_proxy import FaultProxy
from tests.reliability.toolkit import ConnectionKiller, report, watching


async def test_pubsub_connection_killed_every_two_seconds_loses_nothing(
    own_server: LiveServer, own_redis: RedisServer
) -> None:
    hub = own_server.services.hub
    async with (
        watching(own_server, own_redis.url, readers=5, rate=20.0) as watch,
        ConnectionKiller(own_redis.url, "pubsub") as killer,
    ):
        watch.publisher.start(seconds=13.0)
        kills = await killer.every(2.0, times=6)
        truth = await watch.settle()
    watch.every_write_acknowledged(truth)
    watch.check(truth, connections=1)
    assert kills >= 6 and hub.reconnects >= 6, (kills, hub.reconnects)
    report(
        f"CLIENT KILL TYPE pubsub x{kills}: {len(truth)} events, hub reconnects "
        f"{hub.reconnects}, gaps replayed {hub.gaps}; every reader complete"
    )


class ReadinessLog(Background):
    """Polls /readyz and keeps (time, status, failing checks)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int, list[str]]] = []

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=TIMEOUT) as client:
            while True:
                response = await client.get("/readyz")
                failing = response.json().get("failing", []) if response.status_code == 503 else []
                self.samples.append((time.monotonic(), response.status_code, failing))
                await asyncio.sleep(0.05)

    def between(self, start: float, end: float) -> list[tuple[float, int, list[str]]]:
        return [s for s in self.samples if start <= s[0] <= end]


async def test_a_silent_subscription_is_detected_by_the_probe_and_recovered_without_gap(
    proxied_server: LiveServer, proxy: FaultProxy, own_redis: RedisServer
) -> None:
    """Redis keeps "delivering" to the hub's subscriber connection, the hub hears nothing."""
    hub = proxied_server.services.hub
    async with watching(proxied_server, own_redis.url, readers=3, rate=20.0) as watch:
        watch.publisher.start(seconds=30.0)
        await asyncio.sleep(1.0)
        silent_before = hub.silent
        assert proxy.silence() == 1  # the hub's one subscriber connection
        silenced_at = time.monotonic()
        await wait_for(lambda: hub.silent > silent_before, timeout=10, what="the probe to fail")
        detected = time.monotonic() - silenced_at
        await wait_for(lambda: hub.is_ready, what="the hub to resubscribe")
        recovered = time.monotonic() - silenced_at
        await asyncio.sleep(1.0)  # live again: a second of events on the new subscription
        watch.publisher.stop()
        truth = await watch.settle()
    answers = watch.publisher.answers
    assert watch.publisher.by_status() == {201: len(answers)}, "commands kept working"
    assert proxy.silenced() == 0, "the hub left the deaf connection"
    watch.check(truth, connections=1)
    # The probe runs every PUBSUB_PROBE_INTERVAL (3 s) and waits PUBSUB_PROBE_TIMEOUT (2 s).
    assert detected < 3.0 + 2.0 + 1.0 * FACTOR
    report(
        f"silent subscription: detected by the probe after {detected:.2f}s, resubscribed "
        f"after {recovered:.2f}s; {len(truth)} events, every reader complete"
    )


async def test_readyz_names_pubsub_for_as_long_as_the_subscription_stays_deaf(
    proxied_server: LiveServer, proxy: FaultProxy, own_redis: RedisServer
) -> None:
    """The deafness persists across resubscribes (every new subscriber connection is silenced
    too) for ~8 s: /readyz must stay 503 naming pubsub from detection until it heals."""
    hub = proxied_server.services.hub
    async with (
        watching(proxied_server, own_redis.url, readers=3, rate=20.0) as watch,
        ReadinessLog(proxied_server.url) as readiness,
    ):
        watch.publisher.start(seconds=30.0)
        await asyncio.sleep(1.0)
        silent_before = hub.silent
        proxy.silence(new_ones_too=True)
        await wait_for(lambda: hub.silent > silent_before, timeout=10, what="the probe to fail")
        detected_at = time.monotonic()
        await asyncio.sleep(8.0)
        healed_at = time.monotonic()
        proxy.heal()
        await wait_for(lambda: hub.is_ready, timeout=10, what="the hub to be ready again")
        await wait_for(
            lambda: bool(readiness.samples) and readiness.samples[-1][1] == 200,
            timeout=10,
            what="/readyz 200 again",
        )
        watch.publisher.stop()
        truth = await watch.settle()
    watch.check(truth, connections=1)
    # Allow one polling interval for /readyz to turn after the probe failed.
    during = readiness.between(detected_at + 0.2, healed_at)
    ready_while_deaf = [(round(t - detected_at, 2), s) for t, s, f in during if "pubsub" not in f]
    report(
        f"persistent deafness: {len(during)} /readyz polls while deaf, "
        f"{len(ready_while_deaf)} did not name pubsub; hub silent={hub.silent}, "
        f"reconnects={hub.reconnects}"
    )
    assert not ready_while_deaf, (
        "/readyz reported pubsub healthy while every subscriber connection was deaf "
        f"(seconds after detection, status): {ready_while_deaf[:10]}"
    )
