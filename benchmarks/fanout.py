"""Fan-out benchmark: livefeed against the Python peers, in the same run. Run by hand:

    pip install -e '.[bench]'
    python benchmarks/fanout.py --quick      # C = 1,000; about 2 minutes
    python benchmarks/fanout.py              # C = 1k, 5k, 10k; stepped rates; ~12 minutes

Systems: ``ceiling`` (a bare ``websockets`` server, one Redis subscription,
``websockets.broadcast``: the practical ceiling of a Python process), ``livefeed``,
``livefeed-sse`` (the same server, every reader on SSE ``/events``), ``livefeed-mixed``
(80 % WebSocket, 20 % SSE readers of one server),
``broadcaster`` (Starlette + encode/broadcaster) and ``socketio`` (python-socketio +
AsyncRedisManager), each in its own process pinned to core 0; the load clients
(benchmarks/loadclient.py), the publisher and a private redis-server on core 1.

Every message goes through Redis: livefeed's ``EventLog.append`` (the Lua script that
appends to the topic's history and publishes), a plain ``PUBLISH`` for the ceiling and
broadcaster, ``AsyncRedisManager.emit`` for socket.io. Each carries ``bench#<seq>#<ns>#``
so the clients check every frame (count, order, no duplicate) and time it.

Reported per system and C: p50/p99/max publish -> receive latency, delivered fraction,
server CPU seconds per 100k deliveries (utime + stime from /proc/PID/stat), RSS per idle
connection, connection setup rate; each also as a ratio to the ceiling of the same run.
Then ``wrk`` on the article page and the briefs API, and comment posting throughput with
viewers receiving every comment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
SERVER_CPU, LOAD_CPU = 0, 1
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SLUG = "xi-putin-moscow-talks"
FILLER = (
    "Xi and Putin held talks in Moscow on energy, trade and the war; a joint statement "
    "is expected tonight."
)
MIXED_SSE_SHARE = 0.2
SYSTEMS = ("ceiling", "livefeed", "livefeed-sse", "livefeed-mixed", "broadcaster", "socketio")
# The livefeed server read by other transports: each system's load client kind and the
# share of its readers on SSE (``GET /events``) rather than the WebSocket.
KINDS = {
    "livefeed-sse": ("sse", 1.0),
    "livefeed-sse-before": ("sse", 1.0),
    "livefeed-mixed": ("mixed", MIXED_SSE_SHARE),
}
BEFORE = ("livefeed-before", "livefeed-sse-before")
# ``--before SRC`` adds "livefeed-before" (and "livefeed-sse-before" next to livefeed-sse):
# livefeed imported from another checkout.
BEFORE_SRC: str | None = None
HEADLINE_RATE = 10.0
CPU_STEP_DELIVERIES = 50_000
TOKEN = "bench-token"


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int) -> Any:
    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


SERVERS: list[subprocess.Popen[bytes]] = []  # stopped at exit, whatever happens
GC_FILES: dict[int, str] = {}  # server pid -> its collector pauses (gcwatch/sitecustomize.py)


def longest_gc_pause(pid: int, since: float) -> float:
    """The longest collector pause (seconds) of server ``pid`` since the unix time ``since``."""
    with contextlib.suppress(FileNotFoundError):
        with open(GC_FILES[pid]) as f:
            pauses = [float(p) for t, p, _ in (line.split() for line in f) if float(t) >= since]
        return max(pauses, default=0.0)
    return 0.0


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


class Redis:
    """A private redis-server on a free port, no persistence, on the load core."""

    def __init__(self) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if binary is None:
            raise SystemExit("fanout.py needs redis-server (or valkey-server) on PATH")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--maxclients",
                "1000",
            ],
            stdout=subprocess.DEVNULL,
            preexec_fn=pinned(LOAD_CPU),
        )
        wait_port(self.port, self.proc)
        self.url = f"redis://127.0.0.1:{self.port}"


def serve_args(redis_url: str, port: int) -> list[str]:
    """``livefeed serve`` as every benchmark runs it: quiet, no drain, no per-address cap."""
    return [
        "serve",
        "--redis-url",
        redis_url,
        "--port",
        str(port),
        "--editor-token",
        TOKEN,
        "--log-level",
        "warning",
        "--drain-seconds",
        "0",
        # every reader comes from 127.0.0.1 here
        "--max-connections-per-ip",
        "1000000",
    ]


def start_server(
    system: str, redis_url: str, extra: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    gc_file = tempfile.mktemp(prefix="fanout-gc-", suffix=".txt")
    # gcwatch/sitecustomize.py logs every server's collector pauses, whatever the server.
    paths = [str(HERE / "gcwatch")]
    if system in BEFORE and BEFORE_SRC:
        paths.append(BEFORE_SRC)
    env = dict(
        os.environ,
        BENCH_REDIS_URL=redis_url,
        BENCH_GC_FILE=gc_file,
        PYTHONPATH=os.pathsep.join(paths),
    )
    if system.startswith("livefeed"):
        cmd = [
            PY,
            "-m",
            "livefeed",
            *serve_args(redis_url, port),
            *(extra or []),
        ]
    else:
        script = {
            "ceiling": "ceiling.py",
            "broadcaster": "broadcaster_app.py",
            "socketio": "socketio_app.py",
        }[system]
        cmd = [PY, str(HERE / "baselines" / script), "--port", str(port), "--redis-url", redis_url]
    # `python -m` puts the working directory first on sys.path: run where the code is.
    cwd = BEFORE_SRC if system in BEFORE and BEFORE_SRC else ROOT
    proc = subprocess.Popen(
        cmd, env=env, preexec_fn=pinned(SERVER_CPU), cwd=cwd, stdout=subprocess.DEVNULL
    )
    SERVERS.append(proc)
    GC_FILES[proc.pid] = gc_file
    wait_port(port, proc)
    if system.startswith("livefeed"):
        wait_ready(port)
    return proc, port


def wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, _ = http_get(port, "/readyz")
            if status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("livefeed never became ready")


def http_get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


# -- load clients ------------------------------------------------------------------------


class Client:
    """One loadclient.py process, spoken to in JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> Client:
        proc = await asyncio.create_subprocess_exec(
            PY,
            str(HERE / "loadclient.py"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=pinned(LOAD_CPU),
            limit=1 << 20,
        )
        return cls(proc)

    async def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a load client died")
        return json.loads(line)  # type: ignore[no-any-return]

    async def exit(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call(cmd="exit"), 10)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()


async def call_all(clients: list[Client], **cmd: Any) -> list[dict[str, Any]]:
    return await asyncio.gather(*(c.call(**cmd) for c in clients))


# -- publishers --------------------------------------------------------------------------


def brief(seq: int, sent_ns: int) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "id": f"b{seq}",
        "text": f"bench#{seq}#{sent_ns}# {FILLER}",
        "breaking": False,
        "article": None,
        "published_at": now,
        "updated_at": now,
    }


class Publisher:
    """Publishes one brief through the system's own Redis path."""

    def __init__(self, system: str, redis_url: str) -> None:
        self.system = system
        self.redis_url = redis_url
        self._publish: Any = None
        self._close: Any = None

    async def open(self) -> None:
        if self.system.startswith("livefeed"):
            from livefeed.events import BRIEF_PUBLISHED, BRIEFS
            from livefeed.storage.connect import connect
            from livefeed.storage.eventlog import EventLog
            from livefeed.storage.keys import Keys

            redis = connect(self.redis_url)
            log = EventLog(redis, Keys("livefeed:"), 1000, sharded=False)

            async def publish(data: dict[str, Any]) -> None:
                await log.append(BRIEFS, BRIEF_PUBLISHED, data)

            self._publish, self._close = publish, redis.aclose
        elif self.system == "socketio":
            import socketio

            manager = socketio.AsyncRedisManager(
                self.redis_url, channel="bench-socketio", write_only=True
            )

            async def publish(data: dict[str, Any]) -> None:
                frame = {
                    "type": "brief.published",
                    "topic": "briefs",
                    "id": data["id"],
                    "data": data,
                }
                await manager.emit("brief.published", frame, room="briefs", namespace="/")

            self._publish, self._close = publish, None
        else:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(self.redis_url)

            async def publish(data: dict[str, Any]) -> None:
                frame = {
                    "type": "brief.published",
                    "topic": "briefs",
                    "id": data["id"],
                    "data": data,
                }
                await client.publish("bench:briefs", json.dumps(frame, separators=(",", ":")))

            self._publish, self._close = publish, client.aclose
        # Warm up (scripts loaded, connections open) with a message no reader counts.
        await self._publish(brief(-1, time.monotonic_ns()))

    async def close(self) -> None:
        if self._close is not None:
            await self._close()

    async def run(self, first: int, rate: float, count: int) -> float:
        """Publish ``count`` briefs at ``rate`` per second; the rate achieved."""
        started = time.monotonic()
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._publish(brief(first + i, time.monotonic_ns()))
        elapsed = time.monotonic() - started
        return count / max(elapsed, 1e-9) if count > 1 else rate


# -- measurements ------------------------------------------------------------------------


@dataclass
class Step:
    rate: float
    published: int = 0
    achieved_rate: float = 0.0
    expected: int = 0
    got: int = 0
    gaps: int = 0
    dups: int = 0
    p50: float = float("nan")
    p99: float = float("nan")
    max: float = float("nan")
    cpu_per_100k: float = float("nan")
    server_cpu_share: float = 0.0
    load_cpu_share: float = 0.0
    closed: dict[str, int] = field(default_factory=dict)
    rounds: int = 1

    @property
    def delivered(self) -> float:
        return self.got / self.expected if self.expected else float("nan")

    # per load client kind (livefeed, sse, ...): readers, got, gaps, dups
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def load_saturated(self) -> bool:
        return self.load_cpu_share > 0.85 or self.achieved_rate < 0.95 * self.rate


@dataclass
class Run:
    system: str
    conns: int
    connected: int = 0
    failed: int = 0
    setup_rate: float = float("nan")
    rss_per_conn: float = float("nan")
    idle_cpu: float = float("nan")  # CPU seconds per second with every reader idle
    gc_pause: float = float("nan")  # the longest collector pause from connecting on, seconds
    steps: list[Step] = field(default_factory=list)
    error: str = ""

    def step(self, rate: float) -> Step | None:
        return next((s for s in self.steps if s.rate == rate), None)


def merge(tries: list[Run]) -> Run:
    """One system's rounds as one: the best figure of each (noise only ever adds), except
    the delivered fraction, which is the worst, and the errors, which are all kept."""
    run = Run(tries[0].system, tries[0].conns)
    run.connected = min(t.connected for t in tries)
    run.failed = max(t.failed for t in tries)
    run.setup_rate = max(t.setup_rate for t in tries)
    run.rss_per_conn = min(t.rss_per_conn for t in tries)
    run.idle_cpu = min(t.idle_cpu for t in tries)
    run.gc_pause = max(t.gc_pause for t in tries)  # the worst: a pause is what readers feel
    run.error = "; ".join(dict.fromkeys(t.error for t in tries if t.error))
    for rate in dict.fromkeys(s.rate for t in tries for s in t.steps):
        steps = [s for t in tries for s in t.steps if s.rate == rate]
        best = min(steps, key=lambda s: s.cpu_per_100k)
        best.rounds = len(steps)
        best.p50 = min(s.p50 for s in steps)
        best.p99 = min(s.p99 for s in steps)
        best.max = min(s.max for s in steps)
        worst = min(steps, key=lambda s: s.delivered)
        best.got, best.expected = worst.got, worst.expected
        best.gaps, best.dups = sum(s.gaps for s in steps), sum(s.dups for s in steps)
        best.load_cpu_share = max(s.load_cpu_share for s in steps)
        run.steps.append(best)
    return run


def percentiles(paths: list[str]) -> tuple[float, float, float]:
    samples = array("q")
    for path in paths:
        with open(path, "rb") as f:
            samples.frombytes(f.read())
        os.unlink(path)
    if not samples:
        return float("nan"), float("nan"), float("nan")
    ordered = sorted(samples)
    n = len(ordered)
    return (ordered[n // 2] / 1e6, ordered[min(n - 1, int(n * 0.99))] / 1e6, ordered[-1] / 1e6)


async def drain(clients: list[Client], expected: int, quiet: float, limit: float) -> None:
    """Wait until every frame arrived, or nothing arrived for ``quiet`` s, or ``limit`` s."""
    started = last_change = time.monotonic()
    last = -1
    while time.monotonic() - started < limit:
        frames = sum(r["frames"] for r in await call_all(clients, cmd="progress"))
        if frames >= expected:
            return
        now = time.monotonic()
        if frames != last:
            last, last_change = frames, now
        elif now - last_change > quiet:
            return
        await asyncio.sleep(0.1)


def spy_on(opts: argparse.Namespace, system: str, pid: int, name: str) -> Any:
    """py-spy recording ``pid`` into ``--py-spy``/name (raw format), if asked for."""
    if not opts.py_spy or system not in opts.py_spy_systems:
        return None
    opts.py_spy.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(PY).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(opts.py_spy / name),
        ],
        preexec_fn=pinned(LOAD_CPU),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_spy(spy: Any) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


async def measure(
    system: str,
    conns: int,
    rates: list[float],
    opts: argparse.Namespace,
    redis: Redis,
    clients: list[Client],
    seq: list[int],
) -> Run:
    run = Run(system, conns)
    proc, port = start_server(system, redis.url)
    publisher = Publisher(system, redis.url)
    try:
        await publisher.open()
        await asyncio.sleep(0.5)
        rss0 = rss_bytes(proc.pid)
        measured_from = time.time()
        kind, sse_fraction = KINDS.get(system, ("livefeed", 0.0))
        if not system.startswith("livefeed"):
            kind = system if system == "socketio" else "ws"
        spy = spy_on(opts, system, proc.pid, f"{system}-{conns}-connect.txt")
        # One reader first: broadcaster loses readers that subscribe concurrently with the
        # very first one (its subscriber set is replaced), which is not what we measure.
        primer = await clients[0].call(
            cmd="connect",
            host="127.0.0.1",
            port=port,
            kind=kind,
            n=1,
            concurrency=1,
            sse_fraction=sse_fraction,
        )
        rest = conns - primer["connected"]
        share = [rest // len(clients) + (i < rest % len(clients)) for i in range(len(clients))]
        answers = await asyncio.gather(
            *(
                c.call(
                    cmd="connect",
                    host="127.0.0.1",
                    port=port,
                    kind=kind,
                    n=n,
                    concurrency=64,
                    sse_fraction=sse_fraction,
                )
                for c, n in zip(clients, share, strict=True)
            )
        )
        run.connected = sum(a["connected"] for a in answers) + primer["connected"]
        run.failed = sum(a["failed"] for a in answers) + primer["failed"]
        run.setup_rate = run.connected / max(a["seconds"] for a in answers)
        if run.failed:
            run.error = f"{run.failed} connections failed: {answers[0]['failures'][:1]}"
        stop_spy(spy)
        await asyncio.sleep(0.5)
        idle0 = cpu_seconds(proc.pid)
        await asyncio.sleep(opts.settle)
        run.idle_cpu = (cpu_seconds(proc.pid) - idle0) / opts.settle
        run.rss_per_conn = (rss_bytes(proc.pid) - rss0) / max(run.connected, 1)
        spy = spy_on(opts, system, proc.pid, f"{system}-{conns}.txt")
        for rate in rates:
            step = Step(rate)
            count = max(2, int(rate * opts.duration))
            first = seq[0]
            starts = await call_all(clients, cmd="start", first=first)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            step.achieved_rate = await publisher.run(first, rate, count)
            seq[0] += count
            step.published = count
            await drain(clients, count * run.connected, opts.quiet, opts.drain)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            reports = await call_all(clients, cmd="report", last=seq[0])
            step.expected = sum(r["expected"] for r in reports)
            step.got = sum(r["got"] for r in reports)
            step.gaps = sum(r["gaps"] for r in reports)
            step.dups = sum(r["dups"] for r in reports)
            for r in reports:
                for code, n in r["closed_by_code"].items():
                    step.closed[code] = step.closed.get(code, 0) + n
                for name, tally in r["by_kind"].items():
                    mine = step.by_kind.setdefault(name, dict.fromkeys(tally, 0))
                    for key, n in tally.items():
                        mine[key] += n
            step.p50, step.p99, step.max = percentiles([r["latencies"] for r in reports])
            step.cpu_per_100k = (cpu1 - cpu0) / max(step.got, 1) * 100_000
            step.server_cpu_share = (cpu1 - cpu0) / (t1 - t0)
            step.load_cpu_share = sum(
                r["cpu"] - s["cpu"] for r, s in zip(reports, starts, strict=True)
            ) / (t1 - t0)
            run.steps.append(step)
            print(
                f"    {system:11} C={conns:<6} {rate:>5g} msg/s: delivered {step.delivered:.4f}"
                f" p50 {step.p50:.1f} p99 {step.p99:.1f} max {step.max:.1f} ms,"
                f" cpu {step.cpu_per_100k:.2f} s/100k, server {step.server_cpu_share:.0%},"
                f" load {step.load_cpu_share:.0%}, published {step.achieved_rate:.1f}/s",
                flush=True,
            )
            if step.delivered < 0.999 or step.p99 > 2000:
                break  # it cannot keep up: higher rates only pile up more
        stop_spy(spy)
        run.gc_pause = longest_gc_pause(proc.pid, measured_from)
        print(
            f"    {system:11} C={conns:<6} setup {run.setup_rate:.0f}/s, RSS/conn "
            f"{run.rss_per_conn / 1024:.1f} KB, idle CPU {run.idle_cpu:.1%},"
            f" longest GC pause {run.gc_pause * 1000:.0f} ms",
            flush=True,
        )
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"    {system}: {run.error}", flush=True)
    finally:
        await call_all(clients, cmd="close")
        with contextlib.suppress(Exception):
            await publisher.close()
        stop(proc)
    return run


# -- HTTP: wrk and comment posting -------------------------------------------------------


WRK_CONNECTIONS = 64


def wrk(
    url: str, seconds: int, connections: int, headers: tuple[str, ...] = ()
) -> dict[str, float] | None:
    binary = shutil.which("wrk")
    if binary is None:
        return None
    extra = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        preexec_fn=pinned(LOAD_CPU),
        check=False,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rps is None or p99 is None:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {
        "rps": float(rps.group(1)),
        "p99": float(p99.group(1)) * scale,
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


async def post_comments(port: int, first: int, seconds: float, posters: int) -> tuple[int, int]:
    """POST comments on keep-alive connections for ``seconds``; (accepted, refused)."""
    counter = [first]
    accepted = refused = 0
    deadline = time.monotonic() + seconds

    async def poster() -> None:
        nonlocal accepted, refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                seq = counter[0]
                counter[0] += 1
                body = json.dumps(
                    {"author": "bench", "text": f"bench#{seq}#{time.monotonic_ns()}# {FILLER}"}
                )
                writer.write(
                    f"POST /api/articles/{SLUG}/comments HTTP/1.1\r\nHost: x\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    f"{body}".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 201"):
                    accepted += 1
                else:
                    refused += 1
        finally:
            writer.close()

    await asyncio.gather(*(poster() for _ in range(posters)))
    return accepted, refused, counter[0]  # type: ignore[return-value]


async def http_phase(
    opts: argparse.Namespace, redis: Redis, clients: list[Client], seq: list[int]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    proc, port = start_server("livefeed", redis.url, ["--demo", "--comment-rate", "100000/second"])
    try:
        base = f"http://127.0.0.1:{port}"
        article = f"{base}/articles/{SLUG}"
        result["article"] = wrk(article, opts.wrk_seconds, WRK_CONNECTIONS)
        result["briefs"] = wrk(f"{base}/api/briefs", opts.wrk_seconds, WRK_CONNECTIONS)
        # A browser or CDN revalidating the page it holds: 304 while nothing changed.
        etag = re.search(rb"(?im)^etag: *(.+?)\r$", http_get(port, f"/articles/{SLUG}")[1])
        if etag is not None:
            header = f"If-None-Match: {etag.group(1).decode()}"
            result["article_304"] = wrk(article, opts.wrk_seconds, WRK_CONNECTIONS, (header,))
        share = [opts.viewers // len(clients)] * len(clients)
        await asyncio.gather(
            *(
                c.call(
                    cmd="connect",
                    host="127.0.0.1",
                    port=port,
                    kind="livefeed",
                    n=n,
                    topic=f"comments:{SLUG}",
                    concurrency=64,
                )
                for c, n in zip(clients, share, strict=True)
            )
        )
        viewers = sum(share)
        await asyncio.sleep(0.5)
        first = seq[0]
        await call_all(clients, cmd="start", first=first, by_id=True)
        cpu0 = cpu_seconds(proc.pid)
        started = time.monotonic()
        accepted, refused, seq[0] = await post_comments(port, first, opts.comment_seconds, 4)
        posting = time.monotonic() - started
        await drain(clients, accepted * viewers, opts.quiet, opts.drain)
        cpu1 = cpu_seconds(proc.pid)
        reports = await call_all(clients, cmd="report", last=seq[0])
        got = sum(r["got"] for r in reports)
        p50, p99, mx = percentiles([r["latencies"] for r in reports])
        result["comments"] = {
            "viewers": viewers,
            "accepted": accepted,
            "refused": refused,
            "per_second": accepted / posting,
            "delivered": got / max(accepted * viewers, 1),
            "dups": sum(r["dups"] for r in reports),
            "late": sum(r["late"] for r in reports),
            "open": sum(r["open"] for r in reports),
            "closed": [r["closed_by_code"] for r in reports],
            "p50": p50,
            "p99": p99,
            "max": mx,
            "cpu_per_100k": (cpu1 - cpu0) / max(got, 1) * 100_000,
        }
    finally:
        await call_all(clients, cmd="close")
        stop(proc)
    return result


# -- the table ---------------------------------------------------------------------------


def ratio(value: float, ceiling: float) -> str:
    if value != value or ceiling != ceiling or ceiling == 0:  # NaN
        return "  —  "
    return f"{value / ceiling:4.2f}×"  # noqa: RUF001 - the multiplication sign


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def cpu_rate(conns: int, rates: list[float]) -> float:
    """The step whose CPU cost is compared: the one nearest 50,000 deliveries/s, enough
    work for the server's CPU time to rise well above the noise of the machine."""
    return min(rates, key=lambda r: abs(r * conns - CPU_STEP_DELIVERIES))


def table(runs: list[Run], headline_rate: float, cpu_rates: dict[int, float]) -> str:
    lines = [
        "| system | C | p50 ms | p99 ms | max ms | delivered | CPU s/100k (at msg/s) "
        "| RSS/conn KB | setups/s | GC pause ms | ratios to ceiling: p99 · CPU · RSS · setup "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    nan = float("nan")
    for conns in sorted({r.conns for r in runs}):
        ceiling = next((r for r in runs if r.conns == conns and r.system == "ceiling"), None)
        rate = cpu_rates.get(conns, headline_rate)
        c_step = (ceiling.step(headline_rate) if ceiling else None) or Step(headline_rate)
        c_cpu = (ceiling.step(rate) if ceiling else None) or Step(rate)
        for run in (r for r in runs if r.conns == conns):
            step = run.step(headline_rate)
            cpu = run.step(rate) or Step(rate)
            notes = []
            if run.error:
                notes.append(run.error[:60])
            if step is None:
                step = Step(headline_rate)
                notes.append(f"{headline_rate:g} msg/s not run: it fell behind at a lower rate")
            for s in {id(step): step, id(cpu): cpu}.values():
                if not s.expected:
                    continue
                if s.load_saturated:
                    notes.append(f"load side saturated at {s.rate:g} msg/s")
                if s.gaps or s.dups:
                    notes.append(f"{s.gaps} gaps, {s.dups} dups at {s.rate:g} msg/s")
                if s.closed:
                    notes.append(f"closed {s.closed} at {s.rate:g} msg/s")
            if cpu.expected and cpu.delivered < 0.999:
                notes.append(f"{cpu.delivered:.1%} delivered at {rate:g} msg/s")
            if len(cpu.by_kind) > 1:
                notes.append(kinds_note(cpu))
            ratios = " · ".join(
                [
                    ratio(step.p99, c_step.p99),
                    ratio(cpu.cpu_per_100k, c_cpu.cpu_per_100k),
                    ratio(run.rss_per_conn, ceiling.rss_per_conn if ceiling else nan),
                    ratio(run.setup_rate, ceiling.setup_rate if ceiling else nan),
                ]
            )
            lines.append(
                f"| {run.system} | {conns} | {fmt(step.p50)} | {fmt(step.p99)} | {fmt(step.max)}"
                f" | {fmt(step.delivered * 100, 2)}% | {fmt(cpu.cpu_per_100k, 2)} ({rate:g})"
                f" | {fmt(run.rss_per_conn / 1024)} | {fmt(run.setup_rate, 0)}"
                f" | {fmt(run.gc_pause * 1000, 0)} | {ratios}"
                f" | {'; '.join(notes)} |"
            )
    return "\n".join(lines)


def kinds_note(step: Step) -> str:
    """Readers and delivered fraction of each kind of a mixed step."""
    notes = []
    for name, t in sorted(step.by_kind.items()):
        delivered = t["got"] / max(t["readers"] * step.published, 1)
        problems = f", {t['gaps']} gaps, {t['dups']} dups" if t["gaps"] or t["dups"] else ""
        notes.append(f"{name}: {t['readers']} readers, {delivered:.2%} delivered{problems}")
    return ", ".join(notes)


def transport_ratios(runs: list[Run], cpu_rates: dict[int, float]) -> str:
    """CPU per delivery of the SSE and mixed systems ÷ livefeed's WebSocket, same run."""
    lines = []
    for conns in sorted({r.conns for r in runs}):
        rate = cpu_rates.get(conns, HEADLINE_RATE)
        ws = next((r for r in runs if r.conns == conns and r.system == "livefeed"), None)
        ws_step = (ws.step(rate) if ws else None) or Step(rate)
        for run in (r for r in runs if r.conns == conns and r.system in KINDS):
            step = run.step(rate) or Step(rate)
            lines.append(
                f"- C = {conns}, {rate:g} msg/s: {run.system} CPU per delivery ÷ livefeed"
                f" (WebSocket) CPU per delivery: {ratio(step.cpu_per_100k, ws_step.cpu_per_100k)}"
                f" ({fmt(step.cpu_per_100k, 2)} ÷ {fmt(ws_step.cpu_per_100k, 2)} s/100k)"
            )
    return "\n".join(lines)


def steps_table(runs: list[Run]) -> str:
    lines = [
        "| system | C | msg/s | deliveries/s | delivered | p50 ms | p99 ms | max ms "
        "| CPU s/100k | server CPU | load CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for s in run.steps:
            lines.append(
                f"| {run.system} | {run.conns} | {s.rate:g} | {s.rate * run.connected:,.0f}"
                f" | {fmt(s.delivered * 100, 2)}% | {fmt(s.p50)} | {fmt(s.p99)} | {fmt(s.max)}"
                f" | {fmt(s.cpu_per_100k, 2)} | {s.server_cpu_share:.0%}"
                f" | {s.load_cpu_share:.0%}{' (saturated)' if s.load_saturated else ''} |"
            )
    return "\n".join(lines)


def http_table(http: dict[str, Any]) -> str:
    lines = []
    for name, path in (
        ("article", f"GET /articles/{SLUG}"),
        ("article_304", f"GET /articles/{SLUG}, If-None-Match: its ETag (304)"),
        ("briefs", "GET /api/briefs"),
    ):
        r = http.get(name)
        lines.append(
            f"- wrk `{path}` ({WRK_CONNECTIONS} connections): "
            + (
                f"{r['rps']:,.0f} requests/s, p99 {r['p99']:.1f} ms"
                + (f", {r['non2xx']:.0f} non-2xx" if r["non2xx"] else "")
                if r
                else "wrk not installed"
            )
        )
    c = http.get("comments")
    if c:
        lines.append(
            f"- comments: {c['per_second']:,.0f} POST/s accepted (4 keep-alive posters), each to "
            f"{c['viewers']} viewers: delivered {c['delivered'] * 100:.2f}%, {c['dups']} dups/"
            f"out of order, p50 {c['p50']:.1f} ms, p99 {c['p99']:.1f} ms, max {c['max']:.1f} ms,"
            f" server CPU {c['cpu_per_100k']:.2f} s/100k deliveries"
        )
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="C = 1,000 only, short steps")
    parser.add_argument("--conns", type=int, nargs="*", help="override the C values")
    parser.add_argument("--rates", type=float, nargs="*", help="override the stepped rates")
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=(*SYSTEMS, *BEFORE))
    parser.add_argument("--clients", type=int, default=2, help="load client processes")
    parser.add_argument("--rounds", type=int, help="repeat the headline rate (default 2)")
    parser.add_argument("--no-http", action="store_true", help="skip wrk and comments")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--py-spy", type=Path, help="record py-spy raw profiles into this folder")
    parser.add_argument("--py-spy-systems", nargs="*", default=["livefeed"])
    parser.add_argument(
        "--before", metavar="SRC", help="also run livefeed from this checkout (livefeed-before)"
    )
    opts = parser.parse_args()
    quick = opts.quick
    global BEFORE_SRC
    BEFORE_SRC = opts.before
    for after, before in zip(("livefeed", "livefeed-sse"), BEFORE, strict=True):
        if opts.before and after in opts.systems and before not in opts.systems:
            opts.systems.insert(opts.systems.index(after) + 1, before)
    opts.duration = 3.0 if quick else 4.0
    opts.drain = 6.0 if quick else 10.0
    opts.quiet = 1.5
    opts.settle = 1.0 if quick else 2.0
    opts.wrk_seconds = 3 if quick else 5
    opts.comment_seconds = 3.0 if quick else 5.0
    opts.viewers = 500 if quick else 1000
    opts.rounds = opts.rounds or 2
    plan: dict[int, list[float]]
    if opts.conns:
        plan = {c: opts.rates or [HEADLINE_RATE] for c in opts.conns}
    elif quick:
        plan = {1000: opts.rates or [10.0, 50.0]}
    else:
        plan = {1000: [10.0, 50.0, 100.0], 5000: [2.0, 10.0, 20.0], 10000: [2.0, 5.0, 10.0]}
        if opts.rates:
            plan = dict.fromkeys(plan, opts.rates)

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the servers
    if hard < max(plan) + 1000:
        print(f"warning: open files limit {hard} is below C = {max(plan)}", file=sys.stderr)
    os.sched_setaffinity(0, {LOAD_CPU})
    started = time.monotonic()
    print(f"machine: {machine()}; server on core {SERVER_CPU}, load on core {LOAD_CPU}", flush=True)
    redis = Redis()
    clients = [await Client.start() for _ in range(opts.clients)]
    seq = [0]
    tries: list[Run] = []
    runs: list[Run] = []
    http: dict[str, Any] = {}
    try:
        for conns, rates in plan.items():
            for round_ in range(opts.rounds):
                # Later rounds repeat the headline and CPU steps: the systems alternate, so a
                # burst of noise from other work on the machine does not hit one alone.
                for system in opts.systems:
                    print(f"  {system} C={conns} round {round_ + 1}", flush=True)
                    again = sorted({HEADLINE_RATE, cpu_rate(conns, rates)} & set(rates))
                    steps = rates if round_ == 0 else again
                    tries.append(await measure(system, conns, steps, opts, redis, clients, seq))
        runs = [
            merge([t for t in tries if (t.system, t.conns) == key])
            for key in dict.fromkeys((t.system, t.conns) for t in tries)
        ]
        if not opts.no_http:
            print("  HTTP: wrk and comments", flush=True)
            try:
                http = await http_phase(opts, redis, clients, seq)
            except Exception as exc:
                print(f"    HTTP phase failed: {type(exc).__name__}: {exc}", flush=True)
    finally:
        for client in clients:
            await client.exit()
        for proc in SERVERS:
            stop(proc)
        stop(redis.proc)
    elapsed = time.monotonic() - started
    print()
    print(
        f"Fan-out, {dt.date.today()}: {machine()}. Headline step {HEADLINE_RATE:g} msg/s,"
        f" best of {opts.rounds} alternating rounds (delivered: the worst)."
    )
    print()
    print(table(runs, HEADLINE_RATE, {c: cpu_rate(c, r) for c, r in plan.items()}))
    print()
    if ratios := transport_ratios(runs, {c: cpu_rate(c, r) for c, r in plan.items()}):
        print(ratios)
        print()
    print(steps_table(runs))
    if http:
        print()
        print(http_table(http))
    print(f"\n(total {elapsed:.0f} s)")
    if opts.json:
        opts.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "runs": [
                        {
                            **{k: v for k, v in r.__dict__.items() if k != "steps"},
                            "steps": [{**s.__dict__, "delivered": s.delivered} for s in r.steps],
                        }
                        for r in runs
                    ],
                    "http": http,
                    "seconds": elapsed,
                },
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
