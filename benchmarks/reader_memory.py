"""Where an idle reader's bytes go: the Python heap per connection, by allocating file. By hand:

    python benchmarks/reader_memory.py --conns 2000

Starts ``livefeed serve`` under tracemalloc (benchmarks/traced_serve.py) with a private
redis-server, takes a heap snapshot, connects ``--conns`` WebSocket readers subscribed
to ``briefs`` (benchmarks/loadclient.py), lets them settle, takes another, and prints the
difference per connection grouped by where it was allocated (uvicorn, websockets,
Starlette, livefeed, asyncio, ...), beside the RSS per connection. tracemalloc slows the
server and adds its own bookkeeping, so compare tallies with each other, and RSS with the
fan-out benchmark's RSS (no tracemalloc there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fanout import (  # noqa: E402
    PY,
    ROOT,
    SERVERS,
    Client,
    Redis,
    free_port,
    rss_bytes,
    serve_args,
    stop,
    wait_port,
    wait_ready,
)


def _group(where: str) -> str:
    """A file's owner: a package under site-packages, livefeed's module, or the stdlib's."""
    path = Path(where.rsplit(":", 1)[0])
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "livefeed" in parts:
        return "livefeed/" + "/".join(parts[parts.index("livefeed") + 1 :])
    return f"stdlib/{path.parent.name}/{path.name}" if path.parent.name else where


def _snapshot(proc: subprocess.Popen[bytes], out: str) -> dict[str, list[int]]:
    Path(out).unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            return json.loads(Path(out).read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    raise RuntimeError("the traced server wrote no snapshot")


def _start_traced(redis_url: str, port: int, out: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, str(HERE / "traced_serve.py"), *serve_args(redis_url, port)],
        cwd=ROOT,
        env=dict(os.environ, TRACED_SNAPSHOT=out),
        stdout=subprocess.DEVNULL,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--lines", type=int, default=0, help="also the N largest lines")
    opts = parser.parse_args()
    redis = Redis()
    out = os.path.join(tempfile.mkdtemp(prefix="reader-memory-"), "snapshot.json")
    port = free_port()
    proc = _start_traced(redis.url, port, out)
    SERVERS.append(proc)
    client = await Client.start()
    try:
        wait_port(port, proc)
        wait_ready(port)
        await asyncio.sleep(1)
        before, rss0 = _snapshot(proc, out), rss_bytes(proc.pid)
        answer = await client.call(
            cmd="connect",
            host="127.0.0.1",
            port=port,
            kind="livefeed",
            n=opts.conns,
            concurrency=64,
        )
        n = int(answer["connected"])
        await asyncio.sleep(3)
        after, rss1 = _snapshot(proc, out), rss_bytes(proc.pid)
        _print(before, after, n, (rss1 - rss0) / n, opts.top, opts.lines)
    finally:
        await client.exit()
        stop(proc)
        stop(redis.proc)


def _print(
    before: dict[str, list[int]],
    after: dict[str, list[int]],
    n: int,
    rss: float,
    top: int,
    lines: int,
) -> None:
    grown: dict[str, list[float]] = {}
    by_line: dict[str, list[float]] = {}
    for name, (size, count) in after.items():
        size0, count0 = before.get(name, [0, 0])
        by_line[name] = [(size - size0) / n, (count - count0) / n]
        group = grown.setdefault(_group(name), [0.0, 0.0])
        group[0] += (size - size0) / n
        group[1] += (count - count0) / n
    total = sum(size for size, _ in grown.values())
    print(f"{n} readers: RSS {rss / 1024:.1f} KB each; Python heap {total / 1024:.1f} KB each")
    print("| allocated in | bytes per reader | blocks per reader |")
    print("|---|---:|---:|")
    for name, (size, count) in sorted(grown.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"| {name} | {size:,.0f} | {count:.1f} |")
    if lines:
        print()
        print("| allocated at | bytes per reader | blocks per reader |")
        print("|---|---:|---:|")
        for name, (size, count) in sorted(by_line.items(), key=lambda kv: -kv[1][0])[:lines]:
            where = name.split("site-packages/")[-1].split("/work/main/")[-1]
            print(f"| {where} | {size:,.0f} | {count:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
