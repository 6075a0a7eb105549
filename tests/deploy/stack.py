"""docker-compose.yml's stack without Docker: the shipped nginx config, three livefeed
processes and one Redis with AOF, all on loopback, started and stopped by PID.

What Docker provides and loopback cannot is rewritten, and nothing else: in
``deploy/nginx.conf`` the resolver, the upstream ``server`` line (one line per process,
without ``resolve``, which Debian's nginx 1.22 lacks), the static files' path and the listen
port; in the compose file the addresses (Redis URL, listen address and port, the trusted
proxy subnet, the metrics port). ``rewrite_nginx`` fails when the shipped file no longer has
exactly the lines it rewrites, and ``test_shipped_files.py`` checks that the rewrite touched
nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from livefeed.settings import Settings
from tests.helpers import Loopback, free_port, start_redis, stop_process, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED_NGINX = ROOT / "deploy" / "nginx.conf"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
TOKEN = "deploy-test-editor-token"

# Each rewritten line of the shipped nginx.conf: (pattern of the whole line, why).
NGINX_REWRITES = {
    "resolver": re.compile(r"^(\s*)resolver 127\.0\.0\.11 valid=\d+s ipv6=off;$"),
    "upstream": re.compile(r"^(\s*)server livefeed:8000 resolve( [^;]*);$"),
    "static": re.compile(r"^(\s*)alias /srv/static/;$"),
    "listen": re.compile(r"^(\s*)listen 80;$"),
}
# The compose settings that name Docker's network; everything else is used as shipped.
COMPOSE_ADDRESSES = {
    "LIVEFEED_REDIS_URL",
    "LIVEFEED_HOST",
    "LIVEFEED_PORT",
    "LIVEFEED_TRUSTED_PROXIES",
    "LIVEFEED_METRICS_PORT",
}


def rewrite_nginx(shipped: str, *, upstreams: list[int], static_dir: Path, port: int) -> str:
    """The shipped config with only its Docker-specific lines made to work on loopback."""
    lines = shipped.splitlines()
    out: list[str] = []
    found = dict.fromkeys(NGINX_REWRITES, 0)
    for line in lines:
        for name, pattern in NGINX_REWRITES.items():
            match = pattern.match(line)
            if match is None:
                continue
            found[name] += 1
            indent = match[1]
            if name == "resolver":
                out.append(f"{indent}# (resolver: Docker's DNS; the upstreams below are addresses)")
            elif name == "upstream":
                out.extend(f"{indent}server 127.0.0.1:{p}{match[2]};" for p in upstreams)
            elif name == "static":
                out.append(f"{indent}alias {static_dir}/;")
            else:
                out.append(f"{indent}listen 127.0.0.1:{port};")
            break
        else:
            out.append(line)
    wrong = {name: n for name, n in found.items() if n != 1}
    assert not wrong, (
        f"deploy/nginx.conf changed: expected each Docker-specific line once, found {wrong}; "
        "update tests/deploy/stack.py with it"
    )
    return "\n".join(out) + "\n"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def dockerfile_env() -> dict[str, str]:
    """The ``ENV`` of the shipped Dockerfile (what the image's processes start with)."""
    env = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


@dataclass
class Node(Loopback):
    """One livefeed replica: compose's command and environment, on a loopback port."""

    index: int
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None


class Stack(Loopback):
    """Redis (AOF) + 3 livefeed processes + nginx running the shipped config; its ``url`` and
    ``ws_url`` are the load balancer's, the only addresses readers and editors use."""

    def __init__(self) -> None:
        # World-readable: nginx's workers (not root) read the static files from here.
        self.dir = Path(tempfile.mkdtemp(prefix="livefeed-deploy-"))
        self.dir.chmod(0o755)
        self.app_dir = self.dir / "app"
        self.static_dir = self.app_dir / "static"
        self.compose = compose()
        self.redis_port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.port = free_port()  # nginx's
        self.nodes = [
            Node(i) for i in range(self.compose["services"]["livefeed"]["deploy"]["replicas"])
        ]
        self.token = TOKEN

    # -- addresses ----------------------------------------------------------------------

    @property
    def compose_prefix(self) -> str:
        """The Redis key prefix the replicas use (compose sets none: the default)."""
        env = self.compose["services"]["livefeed"]["environment"]
        return str(env.get("LIVEFEED_REDIS_PREFIX", Settings().redis_prefix))

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    # -- starting -----------------------------------------------------------------------

    def start(self) -> None:
        # The release under test, as a directory of its own: a "deploy" changes it in place.
        for part in ("livefeed", "templates", "static"):
            shutil.copytree(
                ROOT / part, self.app_dir / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        self.app_dir.chmod(0o755)
        self._start_redis()
        for node in self.nodes:
            self.start_node(node)
        for node in self.nodes:
            self.wait_ready(node)
        self._start_nginx()

    def _start_redis(self) -> None:
        command = list(self.compose["services"]["redis"]["command"])
        assert command[0] == "redis-server", command
        self.redis = start_redis(self.redis_port, self.dir / "redis", *command[1:])

    def node_env(self, node: Node) -> dict[str, str]:
        service = self.compose["services"]["livefeed"]
        shipped = {k: str(v) for k, v in service["environment"].items()}
        assert set(shipped) >= COMPOSE_ADDRESSES, "compose's addresses changed: update stack.py"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFEED_")}
        env.update(dockerfile_env())
        env.update(shipped)
        env.update(
            {
                "LIVEFEED_REDIS_URL": self.redis_url,
                "LIVEFEED_HOST": "127.0.0.1",
                "LIVEFEED_PORT": str(node.port),
                "LIVEFEED_TRUSTED_PROXIES": "127.0.0.1",  # nginx, as the replicas see it
                "LIVEFEED_METRICS_PORT": str(node.metrics_port),
                # The .env file of the compose quick start:
                "LIVEFEED_EDITOR_TOKEN": self.token,
                "LIVEFEED_DATA_DIR": str(self.dir / f"data-{node.index}"),
                "LIVEFEED_LOG_LEVEL": "warning",
                "PYTHONPATH": str(self.app_dir),
            }
        )
        return env

    def start_node(self, node: Node) -> None:
        command = list(self.compose["services"]["livefeed"]["command"])
        assert command[0] == "livefeed"
        node.log = self.dir / f"livefeed-{node.index}.log"
        log = node.log.open("ab")
        node.process = subprocess.Popen(
            [sys.executable, "-m", "livefeed", *command[1:]],
            env=self.node_env(node),
            cwd=self.app_dir,
            stdout=log,
            stderr=log,
        )
        log.close()

    def wait_ready(self, node: Node) -> None:
        name = f"livefeed {node.index}"

        def ready() -> bool:
            return _ready(node.process, node.url, name, lambda: self.output(node))

        wait_until(ready, f"{name} to be ready", 30)

    def _start_nginx(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(nginx), "the deploy tests need nginx (apt-get install -y nginx)"
        prefix = self.dir / "nginx"
        (prefix / "logs").mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(self.nginx_config())
        self.nginx_log = prefix / "logs" / "error.log"
        globals_ = f"daemon off; pid {prefix}/nginx.pid;"
        args = [
            nginx,
            "-p",
            str(prefix),
            "-c",
            str(conf),
            "-e",
            str(self.nginx_log),
            "-g",
            globals_,
        ]
        log = (prefix / "logs" / "stdout.log").open("wb")
        self.nginx = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()

        def up() -> bool:
            return _ready(self.nginx, self.url, "nginx", self.nginx_log.read_text)

        wait_until(up, "nginx to answer", 20)

    def nginx_config(self) -> str:
        return rewrite_nginx(
            SHIPPED_NGINX.read_text(),
            upstreams=[n.port for n in self.nodes],
            static_dir=self.static_dir,
            port=self.port,
        )

    # -- stopping -----------------------------------------------------------------------

    def stop_node(self, node: Node, sig: int = signal.SIGTERM) -> int | None:
        process, node.process = node.process, None
        return None if process is None else stop_process(process, sig, grace=30)

    def output(self, node: Node) -> str:
        return node.log.read_text(errors="replace")[-4000:] if node.log else ""

    def stop(self) -> None:
        if self.nginx is not None:
            stop_process(self.nginx)  # SIGTERM: nginx's fast shutdown
        for node in self.nodes:
            self.stop_node(node)
        if self.redis is not None:
            stop_process(self.redis)
        shutil.rmtree(self.dir, ignore_errors=True)


def _ready(process: subprocess.Popen[bytes] | None, url: str, name: str, output: Any) -> bool:
    """Whether ``url`` answers /readyz 200; fails at once, with its output, if ``name``'s
    process has exited."""
    assert process is not None
    if process.poll() is not None:
        raise AssertionError(f"{name} exited:\n{output()}")
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
