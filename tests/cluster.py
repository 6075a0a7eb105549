"""A real 3-master Redis Cluster on free loopback ports, for the cluster tests."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis


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
        self.args: list[list[str]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
        if binary is None or cli is None:
            raise RuntimeError("cluster tests need redis-server and redis-cli on PATH")
        for port in self.ports:
            node_dir = self.data_dir / str(port)
            node_dir.mkdir(parents=True)
            args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)]
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += [
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ]
            if self.node_timeout_ms:
                args += ["--cluster-node-timeout", str(self.node_timeout_ms)]
            if self.replicas:
                # A master whose replica has to resync in full sends it at once instead of
                # waiting 5 s for more replicas to share the transfer.
                args += ["--repl-diskless-sync-delay", "0"]
            self.args.append(args)
            self.processes.append(
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port in self.ports:
            _wait(lambda p=port: _ask(p, "PING"))
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
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
        self.processes[index] = subprocess.Popen(
            self.args[index], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(lambda: _ask(port, "PING"))

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``."""
        process = self.processes[self.ports.index(port)]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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


def _wait(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the Redis cluster did not come up")
        time.sleep(0.05)
