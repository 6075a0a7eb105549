"""Client addresses per SPEC "Client addresses and proxies", against a real uvicorn server.

Per-address limits use the TCP peer unless the peer is a trusted proxy; uvicorn's own
proxy-header handling (which trusts loopback) must not be a second, looser mechanism.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_network

import httpx
import pytest
import websockets

from livefeed.settings import Rate, Settings
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth

ARTICLE = {"title": "t", "summary": "s", "body": ["p"]}


async def _served(settings: Settings) -> AsyncIterator[LiveServer]:
    server = LiveServer(settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as api:
            await api.put("/api/articles/door", json=ARTICLE, headers=auth(server.token))
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def untrusting(settings: Settings) -> AsyncIterator[LiveServer]:
    """No trusted proxies (the default): loopback is a client like any other."""
    async for server in _served(settings.with_(comment_rate=Rate(5, 60))):
        yield server


@pytest.fixture
async def behind_proxy(settings: Settings) -> AsyncIterator[LiveServer]:
    """Loopback (as a CIDR range) is the trusted proxy."""
    trusted = (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    async for server in _served(settings.with_(comment_rate=Rate(2, 60), trusted_proxies=trusted)):
        yield server


async def _comments(server: LiveServer, headers: list[dict[str, str]]) -> list[int]:
    answers = []
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as api:
        for n, extra in enumerate(headers):
            comment = {"author": "Reader", "text": f"comment {n}"}
            response = await api.post("/api/articles/door/comments", json=comment, headers=extra)
            answers.append(response.status_code)
    return answers


async def test_forwarded_headers_from_an_untrusted_peer_change_nothing(
    untrusting: LiveServer,
) -> None:
    # Seven comments from 127.0.0.1, each claiming another client: one budget of 5.
    forged = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in range(1, 8)]
    assert await _comments(untrusting, forged) == [201] * 5 + [429] * 2


async def test_forwarded_header_from_an_untrusted_peer_changes_nothing(
    untrusting: LiveServer,
) -> None:
    forged = [{"Forwarded": f"for=198.51.100.{n}"} for n in range(1, 8)]
    assert await _comments(untrusting, forged) == [201] * 5 + [429] * 2


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    behind_proxy: LiveServer,
) -> None:
    one, two = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    assert await _comments(behind_proxy, [one, one, two, two, one, two]) == [201] * 4 + [429] * 2


async def test_the_rightmost_untrusted_address_wins(behind_proxy: LiveServer) -> None:
    # The client forges the left part; our proxies (127.0.0.x, trusted) append on the right.
    forged = [{"X-Forwarded-For": f"10.9.9.{n}, 203.0.113.50, 127.0.0.5"} for n in range(3)]
    assert await _comments(behind_proxy, forged) == [201, 201, 429]


async def test_forwarded_header_is_read_from_a_trusted_proxy(behind_proxy: LiveServer) -> None:
    one = {"Forwarded": 'for="[2001:db8:5::1]:4711";proto=https'}
    two = {"Forwarded": "for=198.51.100.1, for=198.51.100.2"}
    assert await _comments(behind_proxy, [one, one, two, two, one, two]) == [201] * 4 + [429] * 2


async def test_ipv6_clients_are_counted_per_64(behind_proxy: LiveServer) -> None:
    same_64 = [{"X-Forwarded-For": f"2001:db8:1:2::{n:x}"} for n in (1, 0xFFFF, 0xABC)]
    other_64 = {"X-Forwarded-For": "2001:db8:1:3::1"}
    assert await _comments(behind_proxy, [*same_64, other_64]) == [201, 201, 429, 201]


@pytest.mark.parametrize(
    "third",
    [
        pytest.param("203.0.113.8", id="the-same-client-again"),
        # A forged left-most hop does not make a known client a new one.
        pytest.param("1.2.3.4, 203.0.113.7", id="a-forged-left-most-hop"),
    ],
)
async def test_live_connection_cap_uses_the_forwarded_client(
    settings: Settings, third: str
) -> None:
    trusted = (ip_network("127.0.0.1/32"),)
    server = LiveServer(settings.with_(max_connections_per_ip=1, trusted_proxies=trusted))
    await server.start()
    try:
        # Behind the (trusted) proxy, two readers at two addresses are two clients ...
        first = await websockets.connect(
            server.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.7"}
        )
        second = await websockets.connect(
            server.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.8"}
        )
        # ... and a third connection from one of them is one too many.
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(server.ws_url, additional_headers={"X-Forwarded-For": third})
        assert refused.value.response.status_code == 429
        await first.close()
        await second.close()
    finally:
        await server.stop()


async def test_https_from_an_untrusted_peer_is_not_believed(untrusting: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=untrusting.url, timeout=TIMEOUT) as api:
        for header in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "proto=https"}):
            page = await api.get("/editor/login", headers=header)
            assert "secure" not in page.headers["set-cookie"].lower()
            assert "strict-transport-security" not in page.headers


async def test_https_from_a_trusted_proxy_makes_cookies_secure(behind_proxy: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=behind_proxy.url, timeout=TIMEOUT) as api:
        for header in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "for=192.0.2.1;proto=https"}):
            page = await api.get("/editor/login", headers=header)
            assert "secure" in page.headers["set-cookie"].lower()
            assert page.headers["strict-transport-security"].startswith("max-age=")
        plain = await api.get("/editor/login", headers={"X-Forwarded-Proto": "http"})
        assert "secure" not in plain.headers["set-cookie"].lower()


async def test_same_origin_check_uses_the_host_the_proxy_passes_on(
    behind_proxy: LiveServer,
) -> None:
    form = {"author": "Reader", "text": "through the balancer"}
    origin = {"Origin": "http://localhost:8080"}
    async with httpx.AsyncClient(base_url=behind_proxy.url, timeout=TIMEOUT) as api:
        # nginx with $http_host passes the port on: the browser's origin matches.
        kept = await api.post(
            "/articles/door/comments", data=form, headers={**origin, "Host": "localhost:8080"}
        )
        assert kept.status_code == 303, kept.text
        # `Host $host` drops the port: the same browser would be refused.
        dropped = await api.post(
            "/articles/door/comments", data=form, headers={**origin, "Host": "localhost"}
        )
        assert dropped.status_code == 403
        events = await api.get("/events?topic=briefs", headers={**origin, "Host": "localhost"})
        assert events.status_code == 403
