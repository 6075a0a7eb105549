"""Web Push for breaking briefs, end to end on loopback against the tests' own push service."""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis import asyncio as aioredis

from livefeed import limits
from livefeed.push import service, vapid
from livefeed.settings import Rate, Settings
from tests.conftest import LiveServer
from tests.editor_support import EditorBrowser
from tests.helpers import TIMEOUT, auth, wait_for
from tests.push_service import PushService

SUBSCRIPTIONS = "/api/push/subscriptions"


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    async with PushService() as service:
        yield service


@pytest.fixture
def settings(settings: Settings, push_service: PushService) -> Settings:
    return settings.with_(
        push_allowed_endpoints=(f"{push_service.url}/push/",),
        push_subscribe_rate=Rate(100_000, 60),
    )


async def _subscribe_all(api: httpx.AsyncClient, service: PushService, names: list[str]) -> None:
    async def one(name: str) -> None:
        response = await api.post(SUBSCRIPTIONS, json=service.browser(name).subscription())
        assert response.status_code == 201, response.text

    for start in range(0, len(names), 50):
        await asyncio.gather(*(one(n) for n in names[start : start + 50]))


async def _publish(live_server: LiveServer, api: httpx.AsyncClient, **brief: Any) -> Any:
    response = await api.post("/api/briefs", json=brief, headers=auth(live_server.token))
    assert response.status_code == 201, response.text
    return response.json()


async def _dispatcher_ready(live_server: LiveServer) -> None:
    """The dispatcher holds its lease and has set its cursor (briefs after this are pushed)."""
    push = live_server.services.push.get()
    await wait_for(
        lambda: push.dispatcher.holds_lease, what="the push dispatcher to take its lease"
    )
    await wait_for(lambda: _has_cursor(push), what="the push dispatcher to start following briefs")


async def _has_cursor(push: service.PushService) -> bool:
    return await push.store.cursor() is not None


async def test_the_public_key_is_a_p256_point_and_stays_the_same(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    key = (await api.get("/api/push/key")).json()["public_key"]
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(raw) == 65 and raw[0] == 4
    await live_server.restart()
    async with live_server.client() as client:
        assert (await client.get("/api/push/key")).json()["public_key"] == key


async def test_subscribe_and_unsubscribe(
    live_server: LiveServer, api: httpx.AsyncClient, push_service: PushService
) -> None:
    subscription = push_service.browser("one").subscription()
    assert (await api.post(SUBSCRIPTIONS, json=subscription)).status_code == 201
    assert (await api.post(SUBSCRIPTIONS, json=subscription)).status_code == 201
    store = live_server.services.push.get().store
    assert await store.count() == 1  # the same browser again replaces, never duplicates
    gone = await api.request("DELETE", SUBSCRIPTIONS, json={"endpoint": subscription["endpoint"]})
    assert gone.status_code == 204
    assert await store.count() == 0
    foreign = await api.post(
        SUBSCRIPTIONS, json=subscription, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.com/x",  # not https
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.1.2.3/x",
        "https://192.168.0.10/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[fe80::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://0.0.0.0/x",
        "https://user:pw@push.example.com/x",
        "file:///etc/passwd",
        "https://intranet/x",
    ],
)
async def test_endpoints_into_our_own_network_are_422(
    api: httpx.AsyncClient, push_service: PushService, endpoint: str
) -> None:
    subscription = {**push_service.browser("x").subscription(), "endpoint": endpoint}
    response = await api.post(SUBSCRIPTIONS, json=subscription)
    assert response.status_code == 422, response.text


async def test_bad_subscriptions_are_4xx(api: httpx.AsyncClient, push_service: PushService) -> None:
    good = push_service.browser("x").subscription()
    bad = [
        {**good, "keys": {"p256dh": "AAAA", "auth": good["keys"]["auth"]}},
        {**good, "keys": {"p256dh": good["keys"]["p256dh"]}},
        {**good, "extra": 1},
        {"endpoint": good["endpoint"]},
        {**good, "endpoint": "x" * 3000},
        ["not", "an", "object"],
    ]
    for payload in bad:
        assert (await api.post(SUBSCRIPTIONS, json=payload)).status_code == 422, payload
    assert (await api.post(SUBSCRIPTIONS, content=b"{nope")).status_code == 400


async def test_subscribing_is_rate_limited_per_address(
    live_server: LiveServer, push_service: PushService
) -> None:
    await live_server.stop()
    live_server.settings = live_server.settings.with_(push_subscribe_rate=Rate(3, 60))
    await live_server.start()
    async with live_server.client() as api:
        codes = [
            (await api.post(SUBSCRIPTIONS, json=push_service.browser(f"r{n}").subscription()))
            for n in range(4)
        ]
    assert [r.status_code for r in codes] == [201, 201, 201, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1


async def test_1000_subscriptions_each_get_one_decryptable_message(
    live_server: LiveServer, api: httpx.AsyncClient, push_service: PushService
) -> None:
    names = [f"reader{n}" for n in range(1000)]
    await _subscribe_all(api, push_service, names)
    await _dispatcher_ready(live_server)
    await _publish(live_server, api, text="Not breaking: never pushed")
    brief = await _publish(live_server, api, text="Polls close", breaking=True, article="vote")
    started = time.monotonic()
    await wait_for(
        lambda: len(push_service.receipts) >= 1000, timeout=60, what="1000 push messages"
    )
    took = time.monotonic() - started
    assert push_service.errors == []
    for name in names:
        (message,) = push_service.delivered(name)
        assert message["id"] == brief["id"]
        assert message["text"] == "Polls close"
        assert message["url"] == "/articles/vote"
    await asyncio.sleep(0.5)  # nothing more arrives: each exactly once
    assert len(push_service.receipts) == 1000
    headers = push_service.receipts[0].headers
    assert headers["ttl"] == str(limits.PUSH_TTL) and headers["urgency"] == "high"
    metrics = (await api.get("/metrics")).text
    assert 'livefeed_pushes_total{outcome="sent"} 1000.0' in metrics
    print(f"\n1000 pushes delivered in {took:.2f} s")


async def test_gone_endpoints_are_removed_and_retry_after_is_honoured(
    live_server: LiveServer, api: httpx.AsyncClient, push_service: PushService
) -> None:
    await _subscribe_all(api, push_service, ["kept", "gone", "busy", "flaky"])
    push_service.gone.add("gone")
    push_service.scripted["busy"] = [(429, {"Retry-After": "2"})]
    push_service.scripted["flaky"] = [(503, {}), (502, {})]
    await _dispatcher_ready(live_server)
    brief = await _publish(live_server, api, text="Quake", breaking=True)
    await wait_for(
        lambda: all(push_service.delivered(n) for n in ("kept", "busy", "flaky")),
        timeout=TIMEOUT * 3,
        what="pushes to kept, busy and flaky",
    )
    for name in ("kept", "busy", "flaky"):
        assert [m["id"] for m in push_service.delivered(name)] == [brief["id"]]
    first, second = push_service.attempts["busy"]
    assert second - first >= 2.0  # waited as long as the push service asked
    assert len(push_service.attempts["flaky"]) == 3
    store = live_server.services.push.get().store
    await wait_for(lambda: _count_is(store, 3), what="the gone subscription to be removed")
    metrics = (await api.get("/metrics")).text
    assert 'livefeed_pushes_total{outcome="removed"} 1.0' in metrics
    assert 'livefeed_pushes_total{outcome="retried"} 3.0' in metrics


async def _count_is(store: Any, count: int) -> bool:
    return bool(await store.count() == count)


async def test_retracting_a_breaking_brief_cancels_the_pushes_not_sent(
    live_server: LiveServer, api: httpx.AsyncClient, push_service: PushService
) -> None:
    names = [f"reader{n}" for n in range(300)]
    await _subscribe_all(api, push_service, names)
    push_service.delay = 0.25  # a slow push service: the job takes a few seconds
    await _dispatcher_ready(live_server)
    brief = await _publish(live_server, api, text="Wrong", breaking=True)
    await wait_for(lambda: len(push_service.receipts) >= 20, what="the first pushes")
    response = await api.delete(f"/api/briefs/{brief['id']}", headers=auth(live_server.token))
    assert response.status_code == 204
    at_retraction = len(push_service.attempts)
    await asyncio.sleep(1.5)
    sent = len(push_service.receipts)
    # What was in flight when it was retracted may land; nothing is started after.
    assert sent <= at_retraction + limits.PUSH_CONCURRENCY
    assert sent < len(names)
    await asyncio.sleep(1.0)
    assert len(push_service.receipts) == sent


async def test_killing_the_dispatcher_mid_send_loses_none_and_repeats_none(
    redis_server: Any, prefix: str, push_service: PushService, livefeed_process: Any
) -> None:
    env = {
        "LIVEFEED_REDIS_PREFIX": prefix,
        "LIVEFEED_EDITOR_TOKEN": "push-token",
        "LIVEFEED_PUSH_ALLOWED_ENDPOINTS": f"{push_service.url}/push/",
        "LIVEFEED_PUSH_SUBSCRIBE_RATE": "100000/minute",
        "LIVEFEED_LOG_LEVEL": "warning",
    }
    args = ["--redis-url", redis_server.url]
    first = await livefeed_process(args, env)
    second = await livefeed_process(args, env)
    redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    lease = f"{prefix}{{push}}:lease"
    try:
        await wait_for(lambda: _holder(redis, lease), what="a dispatcher to take the lease")
        await wait_for(
            lambda: _exists(redis, f"{prefix}{{push}}:cursor"), what="the dispatcher's cursor"
        )
        owner = str(await redis.get(lease))
        holder, standby = (first, second) if f"-{first.process.pid}-" in owner else (second, first)
        assert f"-{holder.process.pid}-" in owner
        names = [f"reader{n}" for n in range(1000)]
        async with httpx.AsyncClient(base_url=standby.url, timeout=TIMEOUT) as api:
            await _subscribe_all(api, push_service, names)
            push_service.delay = 0.05  # slow enough to be killed in the middle
            response = await api.post(
                "/api/briefs",
                json={"text": "Mid-send", "breaking": True},
                headers=auth("push-token"),
            )
            assert response.status_code == 201
        await wait_for(
            lambda: len(push_service.receipts) >= 200, timeout=30, what="the first 200 pushes"
        )
        holder.stop(signal.SIGKILL)
        at_kill = len(push_service.receipts)
        assert at_kill < len(names), "the dispatcher finished before it could be killed"
        await wait_for(
            lambda: all(push_service.delivered(n) for n in names),
            timeout=60,
            what="the standby to take over and push the rest",
        )
        assert push_service.errors == []
        for name in names:
            assert len(push_service.delivered(name)) == 1, name
        await asyncio.sleep(1.0)
        raw = len(push_service.receipts)
        # Only requests in flight at the kill can reach the push service twice, and those
        # carry the same Topic, so the browser still gets one message.
        assert raw - len(names) <= limits.PUSH_CONCURRENCY
        print(f"\nkilled after {at_kill} pushes; {raw - len(names)} resent and replaced by Topic")
    finally:
        await redis.aclose()


async def _holder(redis: Any, lease: str) -> bool:
    return bool(await redis.get(lease))


async def _exists(redis: Any, key: str) -> bool:
    return bool(await redis.exists(key))


async def test_the_desk_shows_how_many_readers_a_breaking_brief_will_notify(
    live_server: LiveServer, api: httpx.AsyncClient, push_service: PushService
) -> None:
    await _subscribe_all(api, push_service, ["a", "b", "c"])
    async with EditorBrowser(live_server) as browser:
        await browser.login("operator", live_server.token)
        desk = await browser.get("/editor")
    assert ">3 push subscribers</span>" in desk.text


async def test_a_vapid_key_from_the_settings_is_used(
    live_server: LiveServer, push_service: PushService
) -> None:
    private = vapid.generate()
    await live_server.stop()
    live_server.settings = live_server.settings.with_(vapid_private_key=private)
    await live_server.start()
    async with live_server.client() as api:
        key = (await api.get("/api/push/key")).json()["public_key"]
    assert key == vapid.VapidKey(private, "mailto:desk@example.com").public_key


async def test_a_breaking_brief_older_than_the_push_window_is_not_pushed(
    live_server: LiveServer, api: httpx.AsyncClient, push_service: PushService
) -> None:
    await _subscribe_all(api, push_service, ["late"])
    await _dispatcher_ready(live_server)
    # A breaking brief found by the dispatcher only now, published long ago (as after an
    # outage of every process): old news is not pushed.
    store = live_server.services.push.get().store
    old = {"id": "old1", "text": "Old news", "breaking": True, "article": None}
    old["published_at"] = old["updated_at"] = "2020-01-01T00:00:00.000Z"
    await store.queue([old], str(await store.cursor()))
    fresh = await _publish(live_server, api, text="Fresh news", breaking=True)
    await wait_for(lambda: bool(push_service.delivered("late")), what="the fresh push")
    await asyncio.sleep(0.5)
    assert [m["id"] for m in push_service.delivered("late")] == [fresh["id"]]
    assert await store.jobs() == []


async def test_each_breaking_brief_is_its_own_message_and_corrections_are_not_pushed(
    live_server: LiveServer, api: httpx.AsyncClient, push_service: PushService
) -> None:
    names = ["one", "two", "three"]
    await _subscribe_all(api, push_service, names)
    await _dispatcher_ready(live_server)
    first = await _publish(live_server, api, text="First alert", breaking=True)
    second = await _publish(live_server, api, text="Second alert", breaking=True)
    response = await api.patch(
        f"/api/briefs/{first['id']}",
        json={"text": "First alert, corrected"},
        headers=auth(live_server.token),
    )
    assert response.status_code == 200
    await wait_for(
        lambda: all(len(push_service.delivered(n)) == 2 for n in names),
        what="two messages for each subscriber",
    )
    await asyncio.sleep(0.5)
    for name in names:
        ids = sorted(m["id"] for m in push_service.delivered(name))
        assert ids == sorted([first["id"], second["id"]])
    assert len(push_service.receipts) == 6
