"""``livefeed publish --url``, ``correct`` and ``retract``: newsroom scripts through the API.

Every failure is one line on stderr and an exit code a script can act on."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.editor_support import PASSWORD, EditorBrowser, add_editor, new_token
from tests.helpers import TIMEOUT, auth, free_port


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def cli(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
    """The ``livefeed`` command, run without blocking the loop the test server runs in."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livefeed",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), TIMEOUT * 6)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def test_from_a_clean_data_dir_add_an_editor_then_serve_and_sign_in(
    livefeed_process: Any, tmp_path: Path
) -> None:
    """The acceptance path: accounts come first, before livefeed ever ran."""
    data = str(tmp_path / "data")
    added = await cli(
        "editor", "add", "alice", "--password-stdin", "--data-dir", data, stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    server = await livefeed_process(["--data-dir", data], {"LIVEFEED_EDITOR_TOKEN": "op-token"})
    listed = await cli("editor", "list", "--data-dir", data)  # while serve runs: its Redis
    assert listed.returncode == 0 and listed.stdout.startswith("alice\t"), listed.stderr
    async with EditorBrowser(server) as browser:
        await browser.login("alice")
        published = await browser.post("/editor/briefs", {"text": "First brief", "breaking": "1"})
        assert published.status_code == 201, published.text
    assert "op-token" not in server.output and PASSWORD not in server.output


@pytest.fixture
async def token(live_server: LiveServer) -> str:
    await add_editor(live_server, "alice")
    return await new_token(live_server, "alice")


async def test_publish_correct_and_retract_through_the_api(
    live_server: LiveServer, api: httpx.AsyncClient, token: str
) -> None:
    await api.put(
        "/api/articles/talks",
        json={"title": "T", "summary": "S", "body": []},
        headers=auth(live_server.token),
    )
    env = {"LIVEFEED_TOKEN": token}
    published = await cli(
        "publish",
        "Talks ended",
        "--breaking",
        "--article",
        "talks",
        "--url",
        live_server.url,
        env=env,
    )
    assert published.returncode == 0, published.stderr
    brief_id = published.stdout.split()[-1]
    assert published.stdout == f"published brief {brief_id}\n"
    [brief] = (await api.get("/api/briefs")).json()["items"]
    assert (brief["id"], brief["text"], brief["breaking"], brief["article"]) == (
        brief_id,
        "Talks ended",
        True,
        "talks",
    )
    credits = await live_server.services.desk.credits("brief", [brief_id])
    assert credits[brief_id] == {"published": "alice"}

    changes = ("Talks ended late", "--not-breaking", "--no-article")
    corrected = await cli(
        "correct", brief_id, *changes, env={**env, "LIVEFEED_URL": live_server.url}
    )
    assert corrected.returncode == 0, corrected.stderr
    [brief] = (await api.get("/api/briefs")).json()["items"]
    assert (brief["text"], brief["breaking"], brief["article"]) == ("Talks ended late", False, None)

    retracted = await cli("retract", brief_id, "--url", live_server.url, "--token", token)
    assert retracted.returncode == 0, retracted.stderr
    assert retracted.stdout == f"retracted brief {brief_id}\n"
    assert (await api.get("/api/briefs")).json()["items"] == []


async def test_publish_without_a_url_still_goes_through_redis(live_server: LiveServer) -> None:
    result = await cli(
        "publish",
        "Through Redis",
        "--redis-url",
        str(live_server.settings.redis_url),
        "--redis-prefix",
        live_server.settings.redis_prefix,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("queued brief")


def one_line(result: Result) -> str:
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


async def test_failures_say_what_went_wrong_in_one_line(
    live_server: LiveServer, token: str
) -> None:
    url = ("--url", live_server.url)
    bad_token = await cli("publish", "x", *url, "--token", "lf_00000000_" + "A" * 43)
    assert bad_token.returncode == 3
    assert "invalid or revoked token" in one_line(bad_token)

    no_token = await cli("retract", "abc", *url)
    assert no_token.returncode == 3 and "LIVEFEED_TOKEN" in one_line(no_token)

    env = {"LIVEFEED_TOKEN": token}
    unknown = await cli("correct", "no-such-brief", "New text", *url, env=env)
    assert unknown.returncode == 4 and "no brief 'no-such-brief'" in one_line(unknown)
    gone = await cli("retract", "no-such-brief", *url, env=env)
    assert gone.returncode == 4

    invalid = await cli("publish", "x" * 501, *url, env=env)
    assert invalid.returncode == 2 and "longer than 500" in one_line(invalid)
    nothing = await cli("correct", "abc", *url, env=env)
    assert nothing.returncode == 2 and "nothing to change" in one_line(nothing)

    unreachable = await cli("publish", "x", "--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert unreachable.returncode == 1
    assert "cannot reach livefeed" in one_line(unreachable)

    not_a_url = await cli("retract", "abc", "--url", "ftp://example", env=env)
    assert not_a_url.returncode == 2 and "not an http(s) URL" in one_line(not_a_url)

    with_id = await cli("publish", "x", "--id", "abc", *url, env=env)
    assert with_id.returncode == 2 and "--id" in one_line(with_id)
