"""livefeed needs Redis >= 7.0 and says so at start, in words, instead of failing later."""

from __future__ import annotations

from livefeed.storage.connect import connect, problem, version_problem
from tests.conftest import RedisServer


def test_servers_older_than_7_0_are_refused_with_the_floor_named() -> None:
    for old in (["6.2.14"], ["5.0.7"], ["7.2.4", "6.0.16"]):
        message = version_problem(old)
        assert message is not None and ">= 7.0" in message, old
        assert "too old" in message
    for fine in (["7.0.0"], ["7.0.15"], ["7.2.4", "8.0.2"], ["10.1.0"]):
        assert version_problem(fine) is None, fine
    assert version_problem(["unknown"]) is not None


async def test_the_real_server_passes_the_startup_check(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    try:
        assert await problem(client) is None
    finally:
        await client.aclose()
