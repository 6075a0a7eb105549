"""A real 3-master Redis Cluster on free loopback ports, for the cluster tests."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.helpers import start_redis, stop_process, wait_until


class RedisCluster:
    """Three ``redis-server --cluster-enabled yes`` joined by ``redis-cli --cluster create``."""

    def __init__(
        self, data_dir: Path, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 0
    ) -> None:
        self.data_dir = data_dir
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms  # 0: Redis's default (15 s)
        self.ports = [_cluster_port() for _ in range(masters * (1 + replicas))]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.options: list[str] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
        if cli is None:
            raise RuntimeError("cluster tests need redis-cli on PATH")
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        options += ["--save", "", "--appendonly", "no"]
        if self.node_timeout_ms:
            options += ["--cluster-node-timeout", str(self.node_timeout_ms)]
        if self.replicas:
            # A master whose replica has to resync in full sends it at once instead of
            # waiting 5 s for more replicas to share the transfer.
            options += ["--repl-diskless-sync-delay", "0"]
        self.options = options
        for port in self.ports:
            self.processes.append(start_redis(port, self.data_dir / str(port), *options))
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
        subprocess.run(
            [*create, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in self.ports:
            _wait(lambda p=port: "cluster_state:ok" in str(_ask(p, "CLUSTER", "INFO")))
        for port in self.ports:  # every replica has synced with its master
            _wait(lambda p=port: _synced(_ask(p, "ROLE")))

    def master_of_slot(self, slot: int) -> int:
        """The port of the master serving ``slot`` now, as any live node tells it."""
        for port, process in zip(self.ports, self.processes, strict=True):
            if process.poll() is not None:
                continue
            try:
                ranges: Any = _ask(port, "CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            for low, high, primary, *_ in ranges:
                if int(low) <= slot <= int(high):
                    return int(primary[1])
        raise RuntimeError(f"no node knows slot {slot}")

    def restart(self, port: int) -> None:
        """Start the node on ``port`` again, as its supervisor would (it rejoins as a replica
        when its slots were failed over meanwhile)."""
        index = self.ports.index(port)
        self.processes[index] = start_redis(port, self.data_dir / str(port), *self.options)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``."""
        process = self.processes[self.ports.index(port)]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()  # all at once: each waits below
        for process in self.processes:
            stop_process(process)
        self.processes.clear()


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = random.randint(20_000, 50_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


def _synced(role: Any) -> bool:
    return role[0] == "master" or role[3] == "connected"


def _ask(port: int, *command: str) -> object:
    with redis.Redis(port=port, socket_connect_timeout=0.2, decode_responses=True) as client:
        return client.execute_command(*command)


def _wait(check: Callable[[], object]) -> None:
    wait_until(check, "the Redis cluster to come up", 20.0, ignore=(redis.RedisError,))
