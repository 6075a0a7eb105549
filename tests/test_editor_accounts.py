"""Editor accounts and API tokens: in the store, and through ``livefeed editor`` as an
operator types it. Nothing secret is ever stored in clear."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from livefeed.errors import Conflict, InvalidInput, NotFound
from livefeed.storage.connect import connect
from livefeed.storage.editors import Editors, is_editor_name
from livefeed.storage.keys import Keys
from tests.conftest import RedisServer
from tests.editor_support import PASSWORD


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    async with connect(redis_server.url) as client:
        yield client


@pytest.fixture
def editors(redis: Redis, prefix: str) -> Editors:
    return Editors(redis, Keys(prefix))


async def stored_values(redis: Redis, prefix: str) -> str:
    """Every string, hash and set under ``prefix``, as one text to search."""
    found = []
    async for key in redis.scan_iter(match=f"{prefix}*"):
        kind = await redis.type(key)
        if kind == "string":
            found.append(str(await redis.get(key)))
        elif kind == "hash":
            found.append(str(await redis.hgetall(key)))
        elif kind == "set":
            found.append(str(await redis.smembers(key)))
    return "\n".join(found)


async def test_password_is_stored_only_as_an_argon2_hash(
    editors: Editors, redis: Redis, prefix: str
) -> None:
    await editors.add("alice", PASSWORD)
    stored = await stored_values(redis, prefix)
    assert PASSWORD not in stored
    assert "$argon2id$" in stored
    assert await editors.verify_password("alice", PASSWORD)
    assert not await editors.verify_password("alice", PASSWORD + "!")
    assert not await editors.verify_password("nobody", PASSWORD)


async def test_a_name_is_taken_once_and_some_names_are_refused(editors: Editors) -> None:
    await editors.add("alice", PASSWORD)
    with pytest.raises(Conflict):
        await editors.add("alice", "another long password")
    for bad in ("operator", "", "Alice Smith", "-alice", "a" * 33, "al/ice"):
        assert not is_editor_name(bad)
        with pytest.raises(InvalidInput):
            await editors.add(bad, PASSWORD)


async def test_weak_passwords_are_refused(editors: Editors) -> None:
    with pytest.raises(InvalidInput, match="at least"):
        await editors.add("bob", "short")
    with pytest.raises(InvalidInput, match="account name"):
        await editors.add("bobby-tables", "bobby-tables")


async def test_token_is_stored_only_as_a_digest_and_names_its_editor(
    editors: Editors, redis: Redis, prefix: str
) -> None:
    await editors.add("alice", PASSWORD)
    token, info = await editors.new_token("alice")
    assert token.startswith(f"lf_{info.id}_")
    assert token not in await stored_values(redis, prefix)
    assert await editors.editor_of_token(token) == "alice"
    assert await editors.editor_of_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert await editors.editor_of_token("not a token") is None
    [account] = await editors.accounts()
    assert [t.id for t in account.tokens] == [info.id]


async def test_revoking_a_token_ends_it_and_leaves_the_others(editors: Editors) -> None:
    await editors.add("alice", PASSWORD)
    first, first_info = await editors.new_token("alice")
    second, _ = await editors.new_token("alice")
    assert await editors.revoke_token("alice", first_info.id) == 1
    assert await editors.editor_of_token(first) is None
    assert await editors.editor_of_token(second) == "alice"
    with pytest.raises(NotFound):
        await editors.revoke_token("alice", first_info.id)
    assert await editors.revoke_token("alice", None) == 1
    assert await editors.editor_of_token(second) is None


async def test_removing_an_account_revokes_its_tokens(editors: Editors) -> None:
    await editors.add("alice", PASSWORD)
    token, _ = await editors.new_token("alice")
    version = await editors.version("alice")
    await editors.remove("alice")
    assert await editors.editor_of_token(token) is None
    assert await editors.version("alice") is None
    with pytest.raises(NotFound):
        await editors.remove("alice")
    with pytest.raises(NotFound):
        await editors.new_token("alice")
    await editors.add("alice", PASSWORD)  # the name is free again, with a new version
    assert await editors.version("alice") != version


async def test_changing_a_password_changes_the_account_version(editors: Editors) -> None:
    await editors.add("alice", PASSWORD)
    before = await editors.version("alice")
    await editors.set_password("alice", "a brand new passphrase")
    assert await editors.version("alice") != before
    assert await editors.verify_password("alice", "a brand new passphrase")
    assert not await editors.verify_password("alice", PASSWORD)
    with pytest.raises(NotFound):
        await editors.set_password("nobody", "a brand new passphrase")


# -- the CLI ------------------------------------------------------------------------------


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livefeed", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


def editor_cli(
    redis_server: RedisServer, prefix: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    where = ("--redis-url", redis_server.url, "--redis-prefix", prefix)
    return cli("editor", *args, *where, stdin=stdin)


def test_cli_adds_lists_tokens_revokes_and_removes(redis_server: RedisServer, prefix: str) -> None:
    added = editor_cli(redis_server, prefix, "add", "Alice", "--password-stdin", stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    assert "added editor alice" in added.stdout

    made = editor_cli(redis_server, prefix, "token", "alice")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("lf_") and "\n" not in token
    token_id = token.split("_")[1]
    assert "shown only now" in made.stderr

    listed = editor_cli(redis_server, prefix, "list")
    assert listed.returncode == 0
    assert listed.stdout.startswith("alice\t") and token_id in listed.stdout
    assert token not in listed.stdout

    client = sync_redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        dump = "\n".join(
            str(client.hgetall(k)) if client.type(k) == "hash" else str(client.get(k))
            for k in client.scan_iter(match=f"{prefix}*")
            if client.type(k) in {"hash", "string"}
        )
    finally:
        client.close()
    assert PASSWORD not in dump and token not in dump

    revoked = editor_cli(redis_server, prefix, "revoke", "alice", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked 1 token of alice" in revoked.stdout
    removed = editor_cli(redis_server, prefix, "remove", "alice")
    assert removed.returncode == 0, removed.stderr
    assert editor_cli(redis_server, prefix, "list").stdout.startswith("no editors yet")


@pytest.mark.parametrize(
    ("args", "stdin", "code", "words"),
    [
        (("add", "bob", "--password-stdin"), "short", 2, "at least"),
        (("add", "operator", "--password-stdin"), PASSWORD, 2, "reserved"),
        (("add", "bob"), "", 2, "--password-stdin"),
        (("remove", "nobody"), "", 4, "no editor named 'nobody'"),
        (("token", "nobody"), "", 4, "no editor"),
        (("revoke", "nobody", "--all"), "", 4, "no editor"),
        (("passwd", "nobody", "--password-stdin"), PASSWORD, 4, "no editor"),
    ],
)
def test_cli_failures_are_one_line_and_a_code(
    redis_server: RedisServer,
    prefix: str,
    args: tuple[str, ...],
    stdin: str,
    code: int,
    words: str,
) -> None:
    result = editor_cli(redis_server, prefix, *args, stdin=stdin)
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr
    assert result.stderr.startswith("livefeed editor ")


def test_cli_refuses_a_taken_name_and_a_revoke_without_a_token(
    redis_server: RedisServer, prefix: str
) -> None:
    assert (
        editor_cli(
            redis_server, prefix, "add", "bob", "--password-stdin", stdin=PASSWORD
        ).returncode
        == 0
    )
    again = editor_cli(redis_server, prefix, "add", "bob", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 2 and "exists already" in again.stderr
    vague = editor_cli(redis_server, prefix, "revoke", "bob")
    assert vague.returncode == 2 and "TOKEN_ID or --all" in vague.stderr


def test_cli_says_so_when_redis_is_unreachable(tmp_path: object) -> None:
    from tests.helpers import free_port

    result = cli("editor", "list", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot reach Redis" in result.stderr
