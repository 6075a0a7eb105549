"""docker-compose.yml and the load balancer config, checked by parsing (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from livefeed.settings import SETTINGS

ROOT = Path(__file__).parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_redis_persists_with_aof_and_has_a_healthcheck() -> None:
    redis = SERVICES["redis"]
    assert "--appendonly yes" in _command(redis)
    assert "--appendfsync everysec" in _command(redis)
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "ping" in " ".join(redis["healthcheck"]["test"])


def test_livefeed_runs_three_replicas_on_that_redis_and_reports_readiness() -> None:
    livefeed = SERVICES["livefeed"]
    assert livefeed["deploy"]["replicas"] == 3
    assert livefeed["environment"]["LIVEFEED_REDIS_URL"] == "redis://redis:6379/0"
    assert livefeed["environment"]["LIVEFEED_HOST"] == "0.0.0.0"
    assert livefeed["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(livefeed["healthcheck"]["test"])
    assert "ports" not in livefeed, "replicas are reached through the load balancer only"
    assert livefeed["env_file"] == ".env", "secrets come from an env file"
    known = {s.env for s in SETTINGS}
    assert set(livefeed["environment"]) <= known, "only real settings"
    # The drain must end before Docker's stop timeout kills the container.
    drain = float(livefeed["environment"]["LIVEFEED_DRAIN_SECONDS"])
    assert drain < float(livefeed["stop_grace_period"].rstrip("s"))


def test_the_load_balancer_fronts_the_replicas_and_serves_static_files() -> None:
    lb = SERVICES["lb"]
    assert any(p.endswith(":80") for p in lb["ports"])
    assert lb["depends_on"]["livefeed"]["condition"] == "service_healthy"
    mounts = dict(v.rsplit(":", 2)[:2] for v in lb["volumes"])
    assert mounts["./deploy/nginx.conf"] == "/etc/nginx/nginx.conf"
    assert mounts["./static"] == "/srv/static"
    assert re.search(r"location /static/ \{\s*alias /srv/static/;", NGINX)
    assert re.search(r"server livefeed:8000 resolve", NGINX)
    for port_line in re.findall(r"listen (\d+);", NGINX):
        assert port_line == "80"


def test_websocket_upgrade_and_sse_pass_through_the_load_balancer() -> None:
    ws = re.search(r"location = /ws \{(.*?)\}", NGINX, re.S)
    assert ws is not None
    assert "proxy_set_header Upgrade $http_upgrade;" in ws[1]
    assert "proxy_set_header Connection $connection_upgrade;" in ws[1]
    assert re.search(r"proxy_read_timeout (\d+)h", ws[1]), "WebSockets outlive default timeouts"
    assert "proxy_http_version 1.1;" in NGINX
    sse = re.search(r"location = /events \{(.*?)\}", NGINX, re.S)
    assert sse is not None and "proxy_buffering off;" in sse[1]
    assert "proxy_set_header Host $host;" in NGINX, "livefeed checks Origin against Host"
    assert "client_max_body_size 64k;" in NGINX


def test_monitoring_profile_scrapes_every_replica() -> None:
    assert SERVICES["prometheus"]["profiles"] == ["monitoring"]
    assert SERVICES["grafana"]["profiles"] == ["monitoring"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["names"] == ["livefeed"]


def test_the_image_ships_what_livefeed_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for part in ("livefeed", "templates", "static", "pyproject.toml"):
        assert f"COPY {part}" in dockerfile
    assert "redis-server" in dockerfile, "the embedded Redis works in the image too"
