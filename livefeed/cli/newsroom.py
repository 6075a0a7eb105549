"""The newsroom's commands, for people and scripts.

``livefeed editor add|passwd|list|remove|token|revoke`` manage accounts and their API
tokens straight in Redis: ``--redis-url``, else ``LIVEFEED_REDIS_URL``, else the embedded
Redis of ``--data-dir`` (started for the command if ``livefeed serve`` is not running).
``livefeed publish --url``, ``correct`` and ``retract`` go through the HTTP API with a
token (``--token``, better ``LIVEFEED_TOKEN``: a flag shows in the process list).

Each prints what it did on stdout (``editor token`` prints only the token, for
``TOKEN=$(livefeed editor token alice)``) and, on failure, one line on stderr and a
non-zero exit code a script can branch on: 1 unreachable or failed, 2 invalid input,
3 bad token, 4 no such editor, brief or token.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import Any

from livefeed.cli.client import INVALID, NOT_FOUND, UNAUTHORIZED, ApiClient, ApiError
from livefeed.errors import Conflict, InvalidInput, LivefeedError, NotFound
from livefeed.settings import SETTINGS, Settings

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_UNAUTHORIZED = 3
EXIT_NOT_FOUND = 4
DEFAULT_URL = "http://127.0.0.1:8000"

_API_EXIT = {INVALID: EXIT_INVALID, UNAUTHORIZED: EXIT_UNAUTHORIZED, NOT_FOUND: EXIT_NOT_FOUND}


class Failure(Exception):
    """A command failed: one line for stderr, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def redis_flags(parser: argparse.ArgumentParser) -> None:
    for name in ("redis_url", "redis_prefix", "data_dir"):
        setting = next(s for s in SETTINGS if s.name == name)
        parser.add_argument(setting.flag, dest=name, help=f"[env {setting.env}]")


def api_flags(parser: argparse.ArgumentParser, *, url_default: bool) -> None:
    where = f"default {DEFAULT_URL}" if url_default else "without it: through Redis"
    parser.add_argument("--url", help=f"the livefeed server [env LIVEFEED_URL; {where}]")
    parser.add_argument(
        "--token", help="an editor's API token [env LIVEFEED_TOKEN, which is safer]"
    )


def add_commands(commands: Any) -> None:
    """Add ``editor``, ``correct`` and ``retract`` to the ``livefeed`` command."""
    editor = commands.add_parser("editor", help="manage editor accounts and their API tokens")
    verbs = editor.add_subparsers(dest="editor_command", required=True, metavar="VERB")
    for verb, text in (
        ("add", "create an account (asks for its password)"),
        ("passwd", "set a new password (browsers sign in again, API tokens are revoked)"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("name")
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
        redis_flags(parser)
    redis_flags(verbs.add_parser("list", help="list the accounts and their tokens' ids"))
    parser = verbs.add_parser("remove", help="delete an account, its tokens and sessions")
    parser.add_argument("name")
    redis_flags(parser)
    parser = verbs.add_parser("token", help="make a new API token (printed once)")
    parser.add_argument("name")
    redis_flags(parser)
    parser = verbs.add_parser("revoke", help="revoke an API token by its id, or all of them")
    parser.add_argument("name")
    parser.add_argument("token_id", nargs="?", metavar="TOKEN_ID")
    parser.add_argument("--all", action="store_true", help="revoke every token of NAME")
    redis_flags(parser)

    correct = commands.add_parser("correct", help="correct a brief through the HTTP API")
    correct.add_argument("brief_id", metavar="ID")
    correct.add_argument("text", nargs="?")
    group = correct.add_mutually_exclusive_group()
    group.add_argument("--breaking", dest="breaking", action="store_true", default=None)
    group.add_argument("--not-breaking", dest="breaking", action="store_false")
    group = correct.add_mutually_exclusive_group()
    group.add_argument("--article", metavar="SLUG")
    group.add_argument("--no-article", action="store_true", help="unlink the article")
    api_flags(correct, url_default=True)
    retract = commands.add_parser("retract", help="retract a brief through the HTTP API")
    retract.add_argument("brief_id", metavar="ID")
    api_flags(retract, url_default=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run a newsroom command; 0, or one line on stderr and an exit code."""
    try:
        if args.command == "editor":
            url, embedded = _editors_redis(settings)
            try:
                print(asyncio.run(_editor(args, settings, url)))
            finally:
                if embedded is not None:
                    embedded.stop()
        elif args.command == "publish":
            brief = _client(args).publish(args.text, breaking=args.breaking, article=args.article)
            print(f"published brief {brief['id']}")
        elif args.command == "correct":
            _client(args).correct(args.brief_id, **_changes(args))
            print(f"corrected brief {args.brief_id}")
        elif args.command == "retract":
            _client(args).retract(args.brief_id)
            print(f"retracted brief {args.brief_id}")
        return 0
    except Failure as exc:
        verb = args.command + (f" {args.editor_command}" if args.command == "editor" else "")
        print(f"livefeed {verb}: {exc.message}", file=sys.stderr)
        return exc.code


def wants_api(args: argparse.Namespace) -> bool:
    """Whether ``publish`` goes through the HTTP API (given a URL) rather than Redis."""
    return bool(args.url or os.environ.get("LIVEFEED_URL"))


class _Client:
    """ApiClient calls with their failures turned into ``Failure``."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except ApiError as exc:
                raise Failure(exc.message, _API_EXIT.get(exc.kind, EXIT_FAILED)) from None

        return guarded


def _client(args: argparse.Namespace) -> Any:
    url = args.url or os.environ.get("LIVEFEED_URL") or DEFAULT_URL
    token = args.token or os.environ.get("LIVEFEED_TOKEN")
    if not token:
        raise Failure("needs an API token: set LIVEFEED_TOKEN (or --token)", EXIT_UNAUTHORIZED)
    try:
        return _Client(ApiClient(url, token))
    except ApiError as exc:
        raise Failure(exc.message, EXIT_INVALID) from None


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.text is not None:
        changes["text"] = args.text
    if args.breaking is not None:
        changes["breaking"] = args.breaking
    if args.article is not None:
        changes["article"] = args.article
    if args.no_article:
        changes["article"] = None
    if not changes:
        raise Failure("nothing to change: give the new text, --breaking, --article…", EXIT_INVALID)
    return changes


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise Failure("no terminal to ask for the password on: use --password-stdin", EXIT_INVALID)
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Same password again: ") != first:
        raise Failure("the two passwords differ", EXIT_INVALID)
    return first


def _answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _editors_redis(settings: Settings) -> tuple[str, Any]:
    """The Redis that holds the accounts, and the embedded one started for this command.

    Accounts usually come before the first ``livefeed serve``: with no Redis URL and no
    embedded Redis running in the data dir, start it for the command (it persists there).
    """
    from livefeed.embedded_redis import EmbeddedRedis, EmbeddedRedisError, running_url

    if settings.redis_url:
        return settings.redis_url, None
    url = running_url(settings.data_dir)
    if url is not None and _answers(url):
        return url, None
    embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
    try:
        return embedded.start(), embedded
    except EmbeddedRedisError as exc:
        raise Failure(f"no Redis: give --redis-url (or LIVEFEED_REDIS_URL); {exc}") from None


async def _editor(args: argparse.Namespace, settings: Settings, url: str) -> str:
    from redis.exceptions import RedisError

    from livefeed.storage.connect import connect
    from livefeed.storage.editors import Editors, clean_name
    from livefeed.storage.keys import Keys

    name = clean_name(getattr(args, "name", "") or "")
    password = _password(args) if args.editor_command in {"add", "passwd"} else ""
    redis = connect(url)
    editors = Editors(redis, Keys(settings.redis_prefix))
    try:
        return await _editor_verb(editors, args, name, password)
    except (RedisError, OSError) as exc:
        raise Failure(f"cannot reach Redis: {exc}") from None
    except (InvalidInput, Conflict) as exc:
        raise Failure(exc.message, EXIT_INVALID) from None
    except NotFound as exc:
        raise Failure(exc.message, EXIT_NOT_FOUND) from None
    except LivefeedError as exc:
        raise Failure(exc.message) from None
    finally:
        await redis.aclose()


async def _editor_verb(editors: Any, args: argparse.Namespace, name: str, password: str) -> str:
    verb = args.editor_command
    if verb == "add":
        await editors.add(name, password)
        return f"added editor {name}: sign in at /editor, or make an API token with `editor token`"
    if verb == "passwd":
        await editors.set_password(name, password)
        return f"changed the password of {name}; their browsers must sign in again"
    if verb == "remove":
        await editors.remove(name)
        return f"removed editor {name}, their API tokens and their sessions"
    if verb == "token":
        token, info = await editors.new_token(name)
        print(f"livefeed: API token {info.id} for {name}, shown only now", file=sys.stderr)
        return str(token)
    if verb == "revoke":
        if bool(args.token_id) == bool(args.all):
            raise Failure("give a TOKEN_ID or --all", EXIT_INVALID)
        count = await editors.revoke_token(name, None if args.all else args.token_id)
        return f"revoked {count} token{'s' if count != 1 else ''} of {name}"
    accounts = await editors.accounts()
    if not accounts:
        return "no editors yet: add one with `livefeed editor add NAME`"
    lines = []
    for account in accounts:
        tokens = ", ".join(t.id for t in account.tokens) or "no tokens"
        lines.append(f"{account.name}\tsince {account.created_at}\t{tokens}")
    return "\n".join(lines)
