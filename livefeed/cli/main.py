"""The ``livefeed`` command: turns flags into Settings and calls the entry points."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from livefeed import __version__
from livefeed.cli import newsroom
from livefeed.logs import configure_logging
from livefeed.settings import SETTINGS, Settings, SettingsError, mask_url, settings_table

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger("livefeed")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livefeed", description="A real-time live news feed.")
    parser.add_argument("--version", action="version", version=f"livefeed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (embedded Redis unless --redis-url)")
    for setting in SETTINGS:
        if setting.name == "demo":
            serve.add_argument(
                setting.flag,
                dest=setting.name,
                action="store_const",
                const="true",
                help=f"{setting.help} [env {setting.env}]",
            )
        else:
            serve.add_argument(
                setting.flag,
                dest=setting.name,
                metavar=setting.name.upper(),
                help=f"{setting.help} [env {setting.env}, default {setting.default or 'empty'}]",
            )
    publish = commands.add_parser(
        "publish",
        help="publish a brief, through Redis as another service would, or the HTTP API",
        description="Adds the brief to the ingest stream; a running livefeed publishes it. "
        "Redis: --redis-url, else LIVEFEED_REDIS_URL, else the embedded Redis of --data-dir. "
        "With --url (or LIVEFEED_URL) it goes through the HTTP API with an editor's token.",
    )
    publish.add_argument("text")
    publish.add_argument("--breaking", action="store_true")
    publish.add_argument("--article", metavar="SLUG")
    publish.add_argument("--id", dest="brief_id", metavar="ID")
    newsroom.redis_flags(publish)
    newsroom.api_flags(publish, url_default=False)
    newsroom.add_commands(commands)
    commands.add_parser("settings-table", help="print the settings table for the README")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "settings-table":
        print(settings_table())
        return 0
    overrides = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        settings = Settings.load(os.environ, overrides)
    except SettingsError as exc:
        print(f"livefeed: {exc}", file=sys.stderr)
        return 2
    if args.command == "publish" and newsroom.wants_api(args):
        if args.brief_id is not None:
            print("livefeed publish: --id works through Redis only, not --url", file=sys.stderr)
            return 2
        return newsroom.run(args, settings)
    if args.command == "publish":
        return publish(settings, args.text, args.breaking, args.article, args.brief_id)
    if args.command in {"editor", "correct", "retract"}:
        return newsroom.run(args, settings)
    return serve(settings)


def publish(
    settings: Settings, text: str, breaking: bool, article: str | None, brief_id: str | None
) -> int:
    """Queue one brief on the ingest stream; 0 on success, else one line on stderr."""
    from livefeed.cli.publish import brief_payload, publish_to
    from livefeed.embedded_redis import running_url
    from livefeed.errors import LivefeedError, Unavailable

    url = settings.redis_url or running_url(settings.data_dir)
    if url is None:
        print(
            "livefeed publish: no Redis: give --redis-url (or LIVEFEED_REDIS_URL), or run "
            f"`livefeed serve` with the embedded Redis in {settings.data_dir}",
            file=sys.stderr,
        )
        return 1
    try:
        payload = brief_payload(text, breaking=breaking, article=article, brief_id=brief_id)
        entry_id = publish_to(url, payload, prefix=settings.redis_prefix)
    except Unavailable as exc:
        where = mask_url(url)
        print(f"livefeed publish: cannot reach Redis at {where}: {exc.message}", file=sys.stderr)
        return 1
    except LivefeedError as exc:
        print(f"livefeed publish: invalid brief: {exc.message}", file=sys.stderr)
        return 2
    print(f"queued brief {brief_id or 'i' + entry_id} (ingest entry {entry_id})")
    return 0


def serve(settings: Settings) -> int:
    """Run livefeed until it is stopped; non-zero if it never started."""
    configure_logging(settings.log_level, settings.log_format)
    # Imported here so `livefeed --help` stays fast and needs no server libraries.
    from livefeed.app import create_app
    from livefeed.embedded_redis import EmbeddedRedis, EmbeddedRedisError
    from livefeed.serving.server import Server, server_config
    from livefeed.serving.workers import run_workers

    embedded: EmbeddedRedis | None = None
    try:
        if settings.redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
            settings = settings.with_(redis_url=embedded.start())
        else:
            logger.info("using Redis at %s", mask_url(settings.redis_url))
        if settings.editor_token is None:
            settings = settings.with_(editor_token=_new_operator_token(settings.data_dir))
        logger.info("settings: %s", settings.public())
        if settings.workers > 1:
            # One embedded Redis and one editor token for all workers, in their settings.
            return run_workers(settings, worker_app)
        server = Server(
            server_config(
                create_app(settings),
                settings.host,
                settings.port,
                settings.drain_seconds,
                log_level=settings.log_level,
            )
        )
        # uvicorn re-raises SIGTERM once it has shut down; end through `finally` instead, so
        # the embedded Redis is stopped cleanly too.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        server.run()
        return 0 if server.started else 1
    except EmbeddedRedisError as exc:
        print(f"livefeed: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()


OPERATOR_TOKEN_FILE = "editor-token"


def _new_operator_token(data_dir: Path) -> str:
    """A token for this run, written to ``<data dir>/editor-token`` (mode 0600) and shown on
    the terminal only: output that is not a terminal (a container's log, a file) may be
    read by others, so it gets the file's path instead of the token."""
    token = secrets.token_urlsafe(24)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / OPERATOR_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # if the file was there already with a looser mode
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    shown = token if sys.stderr.isatty() else f"in {path} (mode 0600)"
    print(
        f"livefeed: editor token for this run: {shown}\n"
        "          (set LIVEFEED_EDITOR_TOKEN to keep one across restarts)",
        file=sys.stderr,
    )
    return token


def worker_app(settings: Settings) -> Starlette:
    """The app of one ``serve --workers N`` process, built in that process from its settings."""
    from livefeed.app import create_app

    configure_logging(settings.log_level, settings.log_format)  # a fresh process
    return create_app(settings)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)
