"""The `livefeed` command as an operator or a newsroom script uses it."""

from __future__ import annotations

import subprocess
import sys

import websockets

import livefeed
from tests.conftest import LiveServer, RedisServer
from tests.helpers import free_port, recv_json, subscribe


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livefeed", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


async def test_publish_puts_a_brief_on_open_pages(
    live_server: LiveServer, redis_server: RedisServer
) -> None:
    prefix = live_server.settings.redis_prefix
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        result = run(
            "publish",
            "Talks ended",
            "--breaking",
            "--id",
            "wire-42",
            "--redis-url",
            redis_server.url,
            "--redis-prefix",
            prefix,
        )
        assert result.returncode == 0, result.stderr
        assert "wire-42" in result.stdout
        event = await recv_json(ws)
        assert event["type"] == "brief.published"
        assert event["data"]["id"] == "wire-42"
        assert event["data"]["breaking"] is True


def test_publish_fails_in_one_line_when_redis_is_unreachable() -> None:
    result = run("publish", "x", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "cannot reach Redis" in result.stderr


def test_publish_refuses_an_invalid_brief(redis_server: RedisServer) -> None:
    result = run("publish", "   ", "--redis-url", redis_server.url)
    assert result.returncode == 2
    assert "invalid brief" in result.stderr and result.stderr.count("\n") == 1
    result = run("publish", "x" * 501, "--redis-url", redis_server.url)
    assert result.returncode == 2


def test_publish_without_any_redis_says_what_to_do(tmp_path) -> None:
    result = run("publish", "x", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "--redis-url" in result.stderr


async def test_publish_brief_function_for_python_services(
    live_server: LiveServer, redis_server: RedisServer
) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        async with websockets.connect(live_server.ws_url) as ws:
            await subscribe(ws, "briefs")
            entry = livefeed.publish_brief(
                client, "From Python", prefix=live_server.settings.redis_prefix
            )
            event = await recv_json(ws)
            assert event["data"]["id"] == "i" + entry.decode()
            assert event["data"]["text"] == "From Python"
    finally:
        client.close()


def test_serve_rejects_a_bad_setting_in_one_line() -> None:
    result = run("serve", "--history-size", "zero")
    assert result.returncode == 2
    assert "LIVEFEED_HISTORY_SIZE" in result.stderr
