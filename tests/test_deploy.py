"""docker-compose.yml and the load balancer config, checked by parsing (no Docker engine here)."""

from __future__ import annotations

import re
import tomllib
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
    assert "proxy_set_header Upgrade $http_upgrade;" in NGINX
    assert "proxy_set_header Connection $connection_upgrade;" in NGINX
    # nginx inherits proxy_set_header only into a location that sets none of its own: one
    # there would drop Host and X-Forwarded-For for that location (it did, for /ws).
    for location in re.findall(r"location [^{]*\{(.*?)\}", NGINX, re.S):
        assert "proxy_set_header" not in location
    assert re.search(r"proxy_read_timeout (\d+)h", ws[1]), "WebSockets outlive default timeouts"
    assert "proxy_http_version 1.1;" in NGINX
    sse = re.search(r"location = /events \{(.*?)\}", NGINX, re.S)
    assert sse is not None and "proxy_buffering off;" in sse[1]
    # livefeed checks Origin against Host: the port the browser used must reach it.
    assert "proxy_set_header Host $http_host;" in NGINX
    assert "$host;" not in NGINX
    assert "client_max_body_size 64k;" in NGINX


def test_monitoring_profile_scrapes_every_replica_on_its_internal_port() -> None:
    assert SERVICES["prometheus"]["profiles"] == ["monitoring"]
    assert SERVICES["grafana"]["profiles"] == ["monitoring"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["names"] == ["livefeed"]
    metrics_port = SERVICES["livefeed"]["environment"]["LIVEFEED_METRICS_PORT"]
    assert job["dns_sd_configs"][0]["port"] == int(metrics_port)
    assert str(metrics_port) not in " ".join(SERVICES["lb"].get("ports", []))
    # The public listener answers /metrics with nothing, whatever a replica would say.
    assert re.search(r"location = /metrics \{\s*return 404;", NGINX)


def test_replicas_trust_exactly_the_backend_subnet_nginx_reaches_them_on() -> None:
    networks = COMPOSE["networks"]
    backend = networks["backend"]
    assert backend["internal"] is True, "only nginx (also on `edge`) can reach the replicas"
    subnet = backend["ipam"]["config"][0]["subnet"]
    livefeed, lb = SERVICES["livefeed"], SERVICES["lb"]
    assert livefeed["environment"]["LIVEFEED_TRUSTED_PROXIES"] == subnet
    assert livefeed["networks"] == ["backend"]
    assert set(lb["networks"]) == {"edge", "backend"}
    assert SERVICES["redis"]["networks"] == ["backend"]


def test_grafana_and_prometheus_are_not_open_to_anyone() -> None:
    grafana = SERVICES["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    for name in ("grafana", "prometheus"):
        for port in SERVICES[name]["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} is published on loopback only"


def test_nginx_may_open_the_descriptors_its_connections_need() -> None:
    connections = int(re.search(r"worker_connections (\d+);", NGINX)[1])
    nofile = re.search(r"worker_rlimit_nofile (\d+);", NGINX)
    assert nofile is not None
    assert int(nofile[1]) >= 2 * connections, "a proxied connection holds two descriptors"


def test_static_files_are_immutable_only_under_a_content_hash_url() -> None:
    static = re.search(r"location /static/ \{(.*?)\}", NGINX, re.S)
    assert static is not None
    assert "add_header Cache-Control $static_cache_control;" in static[1]
    cache_map = re.search(r"map \$arg_v \$static_cache_control \{(.*?)\}", NGINX, re.S)
    assert cache_map is not None
    assert re.search(r'""\s+"no-cache";', cache_map[1])
    assert re.search(r'default\s+"public, max-age=31536000, immutable";', cache_map[1])


def test_the_image_ships_what_livefeed_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for part in ("livefeed", "templates", "static", "pyproject.toml"):
        assert f"COPY {part}" in dockerfile
    assert "redis-server" in dockerfile, "the embedded Redis works in the image too"


def test_the_image_runs_unprivileged_with_a_data_volume_and_hashed_installs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert "VOLUME /data" in lines
    assert "LIVEFEED_DATA_DIR=/data" in dockerfile
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile
    # livefeed itself is installed without pulling anything the lock file did not pin.
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in dockerfile


def test_the_lock_file_pins_every_dependency_by_hash_within_pyproject_ranges() -> None:
    from packaging.requirements import Requirement

    lock = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+) \\$", lock, re.M))
    blocks = re.split(r"^(?=[a-z0-9_.-]+==)", lock, flags=re.M)[1:]
    assert len(blocks) == len(pinned)
    for block in blocks:
        assert "--hash=sha256:" in block, block.splitlines()[0]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {"setuptools", "wheel"}
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        names.add(name)
        assert name in pinned, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pinned[name]), (name, pinned[name])
    assert names <= set(pinned)
