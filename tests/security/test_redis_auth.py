"""Redis over TLS with an ACL user confined to livefeed's prefix; a wrong password fails fast."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers import auth, free_port

PREFIX = "lfacl:"
PASSWORD = "correct-horse-battery"


class TLSRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.cert = directory / "cert.pem"
        self.key = directory / "key.pem"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, password: str = PASSWORD) -> str:
        return f"rediss://livefeed:{password}@localhost:{self.port}/0?ssl_ca_certs={self.cert}"

    def start(self) -> None:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                str(self.key),
                "-out",
                str(self.cert),
                "-subj",
                "/CN=localhost",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        acl = self.directory / "users.acl"
        # The livefeed user may touch only keys and channels under its prefix.
        acl.write_text(
            "user default off\n"
            f"user livefeed on >{PASSWORD} ~{PREFIX}* &{PREFIX}* +@all -@admin -@dangerous\n"
            f"user admin on >admin-pass ~* &* +@all\n"
        )
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                str(self.cert),
                "--tls-key-file",
                str(self.key),
                "--tls-ca-cert-file",
                str(self.cert),
                "--tls-auth-clients",
                "no",
                "--aclfile",
                str(acl),
                "--dir",
                str(self.directory),
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(self.url()) as client:
                    client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TLSRedis]:
    server = TLSRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_livefeed_runs_on_tls_with_an_acl_user_confined_to_its_prefix(
    livefeed_process, tls_redis: TLSRedis
) -> None:
    env = {
        "LIVEFEED_REDIS_URL": tls_redis.url(),
        "LIVEFEED_REDIS_PREFIX": PREFIX,
        "LIVEFEED_EDITOR_TOKEN": "t",
    }
    server = await livefeed_process(env=env)
    async with httpx.AsyncClient(base_url=server.url) as api:
        brief = await api.post("/api/briefs", json={"text": "Over TLS"}, headers=auth("t"))
        assert brief.status_code == 201
        assert (await api.get("/api/briefs")).json()["items"][0]["id"] == brief.json()["id"]
        assert (await api.get("/readyz")).status_code == 200
    assert PASSWORD not in server.output
    # Everything livefeed wrote is under its prefix (the ACL would have refused anything else).
    admin_url = tls_redis.url().replace(f"livefeed:{PASSWORD}", "admin:admin-pass")
    with redis.Redis.from_url(admin_url, decode_responses=True) as admin:
        assert all(key.startswith(PREFIX) for key in admin.scan_iter("*"))


def test_a_wrong_password_makes_serve_exit_fast_with_a_clear_message(tls_redis: TLSRedis) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "livefeed", "serve", "--port", str(free_port())],
        env={
            "PATH": "/usr/bin:/bin",
            "LIVEFEED_REDIS_URL": tls_redis.url("wrong-password"),
            "LIVEFEED_REDIS_PREFIX": PREFIX,
            "LIVEFEED_EDITOR_TOKEN": "t",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert "authentication failed" in result.stderr
    assert "wrong-password" not in result.stderr + result.stdout
