"""The deploy tier runs the shipped files: the nginx config with only its Docker-specific
lines rewritten, compose's command and settings, the Dockerfile's environment."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.stack import (
    COMPOSE_ADDRESSES,
    NGINX_REWRITES,
    SHIPPED_NGINX,
    Stack,
    dockerfile_env,
    rewrite_nginx,
)


def _rewritten(tmp: Path) -> str:
    return rewrite_nginx(
        SHIPPED_NGINX.read_text(), upstreams=[8001, 8002, 8003], static_dir=tmp, port=8080
    )


def test_the_rewrite_touches_only_the_lines_that_cannot_work_outside_docker(
    tmp_path: Path,
) -> None:
    shipped = SHIPPED_NGINX.read_text().splitlines()
    removed = [
        line[1:]
        for line in difflib.unified_diff(shipped, _rewritten(tmp_path).splitlines(), lineterm="")
        if line.startswith("-") and not line.startswith("---")
    ]
    assert len(removed) == len(NGINX_REWRITES)
    for line in removed:
        assert any(p.match(line) for p in NGINX_REWRITES.values()), line


def test_a_changed_docker_line_fails_the_rewrite_instead_of_being_skipped(tmp_path: Path) -> None:
    drifted = SHIPPED_NGINX.read_text().replace("server livefeed:8000", "server app:8000")
    with pytest.raises(AssertionError, match=r"deploy/nginx\.conf changed"):
        rewrite_nginx(drifted, upstreams=[1], static_dir=tmp_path, port=1)


def test_nginx_accepts_the_rewritten_shipped_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = tmp_path / "nginx.conf"
    conf.write_text(_rewritten(tmp_path))
    (tmp_path / "logs").mkdir()
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "logs/e.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_the_replicas_run_composes_command_and_settings(stack: Stack) -> None:
    service = stack.compose["services"]["livefeed"]
    env = stack.node_env(stack.nodes[0])
    for name, value in service["environment"].items():
        if name not in COMPOSE_ADDRESSES:
            assert env[name] == str(value), name
    for name, value in dockerfile_env().items():
        if name not in {"LIVEFEED_HOST", "LIVEFEED_PORT", "LIVEFEED_DATA_DIR"}:
            assert env[name] == value, name
    node = stack.nodes[0]
    assert node.process is not None
    assert node.process.args[3:] == service["command"][1:]  # python -m livefeed serve --demo
    redis_args = list(stack.compose["services"]["redis"]["command"][1:])
    assert stack.redis is not None
    assert stack.redis.args[1 : 1 + len(redis_args)] == redis_args  # AOF as compose runs it
