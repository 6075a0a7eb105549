"""A real Sentinel deployment on free loopback ports: a primary, its replicas and three
``redis-server --sentinel`` processes watching it, each in a directory of its own."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import redis

from tests.helpers import free_port, start_redis, stop_process, wait_until

SERVICE = "livefeed"
DOWN_AFTER_MS = 1000


class Node:
    """One redis-server (data node or sentinel), started and stopped by PID."""

    def __init__(self, directory: Path, args: list[str], port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_redis(self.port, self.directory, *self.args)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig)
            self.process = None

    def restart_as_replica(self, primary_port: int) -> None:
        """Start again as a replica of ``primary_port`` that the sentinels never promote.

        A node without persistence must not come back as a primary (Redis's replication
        docs): it is empty, and ``replica-priority 0`` does not protect it while it still
        calls itself a primary — on a loaded machine the sentinels once picked it in a
        second failover and the whole dataset was gone."""
        args = list(self.args)
        if "--replicaof" in args:
            at = args.index("--replicaof")
            del args[at : at + 3]
        self.args = [*args, "--replicaof", "127.0.0.1", str(primary_port)]
        if "--replica-priority" not in self.args:
            self.args += ["--replica-priority", "0"]
        self.start()

    def ask(self, *command: str) -> object:
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=0.5)
        try:
            return client.execute_command(*command)
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()

    def role(self) -> str | None:
        reply = self.ask("ROLE")
        return reply[0].decode() if isinstance(reply, list) else None


# Replicas sync as a user of their own, so a test can stop replication (``cut_replication``)
# while livefeed, as the default user, keeps writing to the primary.
_DATA_NODE = ["--save", "", "--appendonly", "no"]
_DATA_NODE += ["--user", "replication", "on", ">sync", "+@all", "~*", "&*"]
_DATA_NODE += ["--masteruser", "replication", "--masterauth", "sync"]


class SentinelDeployment:
    """A primary, ``replicas`` replicas and three sentinels (quorum 2)."""

    def __init__(self, directory: Path, replicas: int = 1) -> None:
        self.directory = directory
        self.primary = Node(directory / "primary", list(_DATA_NODE))
        self.data_nodes = [self.primary]
        for n in range(replicas):
            args = [*_DATA_NODE, "--replicaof", "127.0.0.1", str(self.primary.port)]
            self.data_nodes.append(Node(directory / f"replica{n}", args))
        self.sentinels = [Node(directory / f"sentinel{n}", []) for n in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self) -> None:
        for node in self.data_nodes:
            node.start()
        for sentinel in self.sentinels:
            sentinel.directory.mkdir(parents=True)
            config = sentinel.directory / "sentinel.conf"  # sentinels rewrite their config
            config.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 4000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            sentinel.args = [str(config), "--sentinel"]
            sentinel.start()
        # Every sentinel knows the replicas and the other sentinels before a test kills.
        _until(
            lambda: all(self._sees_everyone(s) for s in self.sentinels),
            "the sentinels to discover the replicas and each other",
        )
        _until(lambda: self._replicas_synced(self.primary), "the replicas to sync")

    def _sees_everyone(self, sentinel: Node) -> bool:
        fields = sentinel.ask("SENTINEL", "MASTER", SERVICE)  # redis-py answers a dict
        if not isinstance(fields, dict):
            return False
        replicas = int(fields.get(b"num-slaves", 0))
        others = int(fields.get(b"num-other-sentinels", 0))
        return replicas == len(self.data_nodes) - 1 and others == len(self.sentinels) - 1

    def _replicas_synced(self, primary: Node) -> bool:
        info = primary.ask("INFO", "replication")  # redis-py answers a dict
        if not isinstance(info, dict):
            return False
        wanted = len(self.data_nodes) - 1
        states = [info.get(f"slave{n}", {}).get("state") for n in range(wanted)]
        return info.get("connected_slaves") == wanted and states == ["online"] * wanted

    def cut_replication(self) -> None:
        """Stop the primary replicating: what it takes from now on, only it has."""
        self.primary.ask("ACL", "SETUSER", "replication", "off")
        self.primary.ask("CLIENT", "KILL", "TYPE", "replica")

    def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers tells it."""
        for sentinel in self.sentinels:
            reply = sentinel.ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            if isinstance(reply, list) and reply:
                return int(reply[1])
        return None

    def fail_over(self) -> int:
        """Move the primary with ``SENTINEL FAILOVER``; the new primary's port once the
        failover is over: the first sentinel names it in ``SENTINEL MASTER``, which clients
        read (GET-MASTER-ADDR-BY-NAME names it earlier), and it serves as the primary.

        The former primary stays up and a primary, with its clients: it denies the
        sentinels the SLAVEOF that would demote it (and close its clients), as if a
        partition kept them apart. Demoted, it would be 6-18 s later. The one a previous
        call left so is made an unpromotable replica first (the sentinels, who take a
        primary for a replica, could pick it, and its data is stale).
        """
        before = self.master_port()
        assert before is not None, "no primary to move"
        for node in self.data_nodes:
            if node.port != before and node.role() == "master":
                node.ask("ACL", "SETUSER", "default", "+slaveof", "+replicaof")
                node.ask("CONFIG", "SET", "replica-priority", "0")
                node.ask("REPLICAOF", "127.0.0.1", str(before))
        # The sentinels may promote a replica still syncing: its data would be stale.
        _until(lambda: self._replicas_synced(self.node_on(before)), "the replicas to sync")
        self.node_on(before).ask("ACL", "SETUSER", "default", "-slaveof", "-replicaof")
        # Refused while a failover is in progress or no replica is ready yet: ask again.
        _until(
            lambda: self.sentinels[0].ask("SENTINEL", "FAILOVER", SERVICE) is not None,
            "a sentinel to accept SENTINEL FAILOVER",
        )
        moved: list[int] = []

        def switched() -> bool:
            fields = self.sentinels[0].ask("SENTINEL", "MASTER", SERVICE)
            if not isinstance(fields, dict):
                return False
            port = int(fields.get(b"port", 0))
            if port == before or self.node_on(port).role() != "master":
                return False
            moved.append(port)
            return True

        _until(switched, "the sentinels to switch to the promoted replica")
        return moved[-1]

    def node_on(self, port: int) -> Node:
        return next(n for n in self.data_nodes if n.port == port)

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data_nodes]:
            node.stop()


def _until(check: Callable[[], object], what: str) -> None:
    wait_until(check, what, timeout=20.0)
