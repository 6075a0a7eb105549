"""HTTP hygiene: the smaller holes the outside review found, each against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from livefeed import limits
from livefeed.cli.client import ApiClient
from livefeed.logs import configure_logging
from tests.conftest import LiveServer, RedisServer
from tests.editor_support import add_editor, new_token
from tests.helpers import TIMEOUT, auth, free_port

ROOT = Path(__file__).resolve().parents[2]


async def _raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[bytes, float]:
    """Send ``head`` (+ ``body``) on a fresh connection; the response's first bytes (b"" if
    the server closed without one) and the seconds it took."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            for i in range(0, len(head), 64 * 1024):  # the server may answer midway
                writer.write(head[i : i + 64 * 1024])
                await writer.drain()
            writer.write(body)
            await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(200), TIMEOUT * 4)
        except ConnectionError:
            answer = b""
        return answer, time.monotonic() - started
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@pytest.mark.parametrize("where", ["url", "headers"])
async def test_oversize_request_line_or_headers_are_refused(
    live_server: LiveServer, where: str
) -> None:
    big = 4 * 1024 * 1024  # the review sent 50 MiB; 4 MiB is as wrong and quicker to send
    if where == "url":
        head = b"GET /?" + b"a" * big + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        lines = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"b" * 1000) for i in range(big // 1000))
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n"
    answer, _ = await _raw_request(live_server.port, head)
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer[:80]
    head_part, _, body = answer.partition(b"\r\n\r\n")
    length = [h for h in head_part.lower().split(b"\r\n") if h.startswith(b"content-length:")]
    assert length and int(length[0].split(b":")[1]) == len(body), answer  # a well-formed answer
    # A request with ordinary headers is still served.
    async with live_server.client() as client:
        assert (await client.get("/healthz", headers={"Cookie": "c" * 4000})).status_code == 200


async def test_a_body_that_never_arrives_gets_408(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "HTTP_BODY_TIMEOUT", 1.0)
    head = (
        b"POST /api/briefs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + live_server.token.encode() + b"\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    answer, took = await _raw_request(live_server.port, head, b'{"text": "slow')
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert took < 1.0 + TIMEOUT


def test_plain_logs_escape_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "plain")
        # What a request for /%0a2026-01-01 00:00:00 INFO forged would put in a line.
        logging.getLogger("livefeed.test").warning(
            "Redis unavailable during GET %s", "/\n2026-01-01 00:00:00,000 INFO forged\r\x1b[2J"
        )
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert "\\n2026-01-01" in lines[0] and "\\x1b" in lines[0] and "\\r" in lines[0]


async def test_a_new_password_revokes_the_editors_api_tokens(live_server: LiveServer) -> None:
    await add_editor(live_server, "alice")
    token = await new_token(live_server, "alice")
    async with live_server.client() as api:
        body = {"text": "with a token"}
        assert (await api.post("/api/briefs", json=body, headers=auth(token))).status_code == 201
        await live_server.services.editors.set_password("alice", "a brand new password 2")
        response = await api.post("/api/briefs", json=body, headers=auth(token))
        assert response.status_code == 401


class _Capture(BaseHTTPRequestHandler):
    """A foreign host a redirect points to: it records the headers it was sent."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        _Capture.seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def elsewhere() -> Iterator[HTTPServer]:
    _Capture.seen = []
    yield from _serve(_Capture)


def test_the_cli_client_does_not_forward_the_token_on_a_redirect(elsewhere: HTTPServer) -> None:
    target = f"http://127.0.0.1:{elsewhere.server_port}/stolen"

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(303)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    for server in _serve(Redirect):
        client = ApiClient(f"http://127.0.0.1:{server.server_port}", "lf_secret_token", timeout=5)
        client.publish("a brief")
    assert len(_Capture.seen) == 1
    assert not any(k.lower() == "authorization" for k in _Capture.seen[0])


def test_dot_env_files_are_ignored_by_git(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", ".env"], check=False
    ).returncode
    assert ignored == 0


# -- processes: the startup log and the operator token --------------------------------------


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    password = "sekrit-pw-in-the-query"
    port = free_port()
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    assert binary is not None
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            password,
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port, password
    finally:
        process.terminate()
        process.wait(10)


async def test_a_password_in_the_redis_url_query_is_masked_in_the_startup_log(
    livefeed_process: Any, password_redis: tuple[int, str], prefix: str, tmp_path: Path
) -> None:
    port, password = password_redis
    url = f"redis://127.0.0.1:{port}/0?password={password}"
    proc = await livefeed_process(
        ["--redis-url", url, "--data-dir", str(tmp_path / "data")],
        {"LIVEFEED_REDIS_PREFIX": prefix, "LIVEFEED_EDITOR_TOKEN": "t" * 20},
    )
    assert "using Redis at redis://127.0.0.1" in proc.output
    assert "password=***" in proc.output
    assert password not in proc.output


async def test_the_operator_token_goes_to_a_private_file_not_to_the_log(
    livefeed_process: Any, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {"LIVEFEED_REDIS_PREFIX": prefix}
    proc = await livefeed_process(
        ["--redis-url", redis_server.url, "--data-dir", str(data_dir)], env
    )
    token_file = data_dir / "editor-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 24
    assert token not in proc.output  # the log is a file here, as in a container
    assert str(token_file) in proc.output
    async with httpx.AsyncClient(base_url=proc.url, timeout=TIMEOUT) as api:
        response = await api.post("/api/briefs", json={"text": "x"}, headers=auth(token))
        assert response.status_code == 201
