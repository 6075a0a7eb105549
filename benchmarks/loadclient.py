"""A load-client process for fanout.py: many WebSocket or SSE readers, every frame verified.

Started by fanout.py (one or more of these, pinned to the load core); driven by JSON lines
on stdin, answering JSON lines on stdout. It speaks just enough WebSocket (RFC 6455) on a
raw asyncio Protocol to be cheap per frame: no per-frame task, no JSON parsing of events.
Each published message carries ``bench#<seq>#<monotonic ns>#`` in its text; every reader
checks that the sequence numbers of a step arrive complete, in order, once.

Kinds: ``livefeed`` (sends a subscribe frame, ready on ``subscribed``), ``ws`` (the
baselines: ready on their ``subscribed`` frame), ``socketio`` (Engine.IO 4 over a
WebSocket: answers the open packet with ``40``, ready on the namespace ack, pongs pings),
``sse`` (livefeed's ``GET /events?topic=...``: HTTP/1.1 on the same raw protocol, the
chunked stream de-chunked and cut into records; each record's ``data:`` is checked exactly
like a WebSocket text frame; ready on the ``event: subscribed`` record: sse.py subscribes
before it answers 200, and that record is queued behind the subscription's replay, so it
is the same "subscription live" signal as the WebSocket's ``subscribed`` frame),
``mixed`` (livefeed readers, every ``1 / sse_fraction``-th of them an ``sse`` reader).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import socket
import struct
import sys
import tempfile
import time
from array import array

MARK = b"bench#"
ZERO_MASK = b"\x00\x00\x00\x00"  # a valid mask key; XOR with it leaves the payload as is

monotonic_ns = time.monotonic_ns


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (mask key zero: no XOR needed)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + ZERO_MASK + payload


class Stats:
    """What one worker process saw during the current step."""

    def __init__(self) -> None:
        self.first = 0
        self.latencies = array("q")
        self.late = 0  # frames of an earlier step
        self.by_id = False  # verify order by event id (concurrent publishers)
        self.frames = 0  # every data frame carrying a mark


STATS = Stats()


class Reader(asyncio.Protocol):
    __slots__ = (
        "buf",
        "close_code",
        "closed",
        "dups",
        "expected",
        "gaps",
        "got",
        "kind",
        "last_id",
        "opened",
        "ready",
        "request",
        "subscribe",
        "transport",
    )

    def __init__(
        self, kind: str, request: bytes, ready: asyncio.Future[None], subscribe: bytes
    ) -> None:
        self.kind = kind
        self.request = request
        self.subscribe = subscribe
        self.last_id = (0, 0)
        self.ready = ready
        self.buf = b""
        self.opened = False
        self.closed = False
        self.close_code = 0
        self.expected = 0
        self.got = 0
        self.gaps = 0
        self.dups = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready ({exc})"))

    def send_text(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(0x1, payload))

    def data_received(self, data: bytes) -> None:
        now = monotonic_ns()
        buf = self.buf + data if self.buf else data
        pos = 0
        if not self.opened:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status:
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.opened = True
            pos = end + 4
            if self.kind == "livefeed":
                self.send_text(self.subscribe)
        n = len(buf)
        while n - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            if b1 < 126:
                start = pos + 2
                length = b1
            elif b1 == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 0x1:
                self.on_text(buf, start, end, now)
            elif opcode == 0x9:
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(client_frame(0xA, buf[start:end]))
            elif opcode == 0x8 and length >= 2:
                self.close_code = (buf[start] << 8) | buf[start + 1]
            pos = end
        self.buf = buf[pos:] if pos < n else b""

    def on_text(self, buf: bytes, start: int, end: int, now: int) -> None:
        i = buf.find(MARK, start, end)
        if i < 0:
            self.on_control(buf[start:end])
            return
        j = buf.find(b"#", i + 6, end)
        k = buf.find(b"#", j + 1, end)
        seq = int(buf[i + 6 : j])
        stats = STATS
        stats.frames += 1
        if stats.by_id:
            self.check_id(buf, start, end, seq, int(buf[j + 1 : k]), now)
            return
        if seq == self.expected:
            self.expected = seq + 1
            self.got += 1
            stats.latencies.append(now - int(buf[j + 1 : k]))
        elif seq > self.expected:
            if seq < stats.first:
                stats.late += 1
                return
            self.gaps += 1  # lost (or reordered) frames before this one
            self.expected = seq + 1
            self.got += 1
            stats.latencies.append(now - int(buf[j + 1 : k]))
        elif seq >= stats.first:
            self.dups += 1  # a duplicate, or one that came out of order
        else:
            stats.late += 1

    def check_id(self, buf: bytes, start: int, end: int, seq: int, sent: int, now: int) -> None:
        """Posted concurrently, events are ordered by their event id, not by our seq."""
        stats = STATS
        if seq < stats.first:
            stats.late += 1
            return
        i = buf.find(b'"id":"', start, end) + 6
        epoch_end = buf.find(b"-", i, end)
        ms_end = buf.find(b"-", epoch_end + 1, end)
        id_end = buf.find(b'"', ms_end + 1, end)
        event_id = (int(buf[epoch_end + 1 : ms_end]), int(buf[ms_end + 1 : id_end]))
        if event_id <= self.last_id:
            self.dups += 1  # a duplicate, or out of order
            return
        self.last_id = event_id
        self.got += 1
        stats.latencies.append(now - sent)

    def on_control(self, payload: bytes) -> None:
        if self.kind == "socketio":
            if payload[:1] == b"0":
                self.send_text(b"40")
            elif payload[:2] == b"40":
                if not self.ready.done():
                    self.ready.set_result(None)
            elif payload == b"2":
                self.send_text(b"3")
        elif b'"subscribed"' in payload and not self.ready.done():
            self.ready.set_result(None)


class SseReader(Reader):
    """A reader of livefeed's ``/events``: records cut from the (chunked) HTTP stream."""

    __slots__ = ("chunked", "pending")

    def __init__(self, request: bytes, ready: asyncio.Future[None]) -> None:
        super().__init__("sse", request, ready, b"")
        self.chunked = False
        self.pending = b""  # de-chunked bytes of a record not complete yet

    def data_received(self, data: bytes) -> None:
        now = monotonic_ns()
        buf = self.buf + data if self.buf else data
        pos = 0
        if not self.opened:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 200 " not in status:
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.opened = True
            self.chunked = b"transfer-encoding: chunked" in buf[:end].lower()
            pos = end + 4
        if self.chunked:
            body, pos = dechunk(buf, pos)
            self.buf = buf[pos:] if pos < len(buf) else b""
        else:
            body, self.buf = buf[pos:], b""
        if self.pending:
            body = self.pending + body
        self.pending = self.on_records(body, now)

    def on_records(self, body: bytes, now: int) -> bytes:
        """Check every complete record in ``body``; what is left of an incomplete one."""
        pos = 0
        while True:
            end = body.find(b"\n\n", pos)
            if end < 0:
                return body[pos:]
            data = body.find(b"data: ", pos, end)
            if data >= 0:  # not a heartbeat comment, nor the retry: record
                self.on_text(body, data + 6, end, now)
            pos = end + 2


def dechunk(buf: bytes, pos: int) -> tuple[bytes, int]:
    """The payloads of the complete chunks from ``pos`` on, and where the rest starts."""
    parts = []
    n = len(buf)
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        end = eol + 2 + size
        if end + 2 > n:
            break
        parts.append(buf[eol + 2 : end])
        pos = end + 2
    return (parts[0] if len(parts) == 1 else b"".join(parts)), pos


class Worker:
    def __init__(self) -> None:
        self.readers: list[Reader] = []
        self.last: int = 0

    async def connect(self, cmd: dict[str, object]) -> dict[str, object]:
        host, port = str(cmd["host"]), int(cmd["port"])  # type: ignore[call-overload]
        kind, n = str(cmd["kind"]), int(cmd["n"])  # type: ignore[call-overload]
        topic = str(cmd.get("topic", "briefs"))
        subscribe = json.dumps({"type": "subscribe", "topic": topic}).encode()
        path = "/socket.io/?EIO=4&transport=websocket" if kind == "socketio" else "/ws"
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(int(cmd.get("concurrency", 100)))  # type: ignore[call-overload]
        failures: list[str] = []

        sse_fraction = float(cmd.get("sse_fraction", 1.0 if kind == "sse" else 0.0))  # type: ignore[arg-type]
        sse_request = (
            f"GET /events?topic={topic} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()

        def make(i: int, ready: asyncio.Future[None]) -> Reader:
            # Spread evenly: reader i is SSE when i * fraction crosses an integer.
            if int((i + 1) * sse_fraction) > int(i * sse_fraction):
                return SseReader(sse_request, ready)
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            return Reader("livefeed" if kind == "mixed" else kind, request, ready, subscribe)

        async def one(i: int) -> None:
            async with gate:
                ready: asyncio.Future[None] = loop.create_future()
                try:
                    _, reader = await asyncio.wait_for(
                        loop.create_connection(lambda: make(i, ready), host, port), 30
                    )
                    await asyncio.wait_for(ready, 30)
                except (OSError, TimeoutError, ConnectionError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
                self.readers.append(reader)

        before = len(self.readers)
        started = time.perf_counter()
        await asyncio.gather(*(one(before + i) for i in range(n)))
        seconds = time.perf_counter() - started
        return {
            "connected": len(self.readers) - before,
            "failed": len(failures),
            "failures": failures[:3],
            "seconds": seconds,
        }

    def start(self, first: int, by_id: bool) -> dict[str, object]:
        STATS.first = first
        STATS.by_id = by_id
        STATS.latencies = array("q")
        STATS.late = 0
        STATS.frames = 0
        for reader in self.readers:
            reader.expected = first
            reader.got = reader.gaps = reader.dups = 0
            reader.last_id = (0, 0)
        return {"ok": True, "cpu": _cpu()}

    def progress(self) -> dict[str, object]:
        return {"frames": STATS.frames, "cpu": _cpu()}

    def report(self, last: int) -> dict[str, object]:
        published = last - STATS.first
        got = sum(r.got for r in self.readers)
        live = [r for r in self.readers if not r.closed]
        fd, path = tempfile.mkstemp(prefix="fanout-lat-", suffix=".bin")
        with os.fdopen(fd, "wb") as out:
            STATS.latencies.tofile(out)
        codes: dict[int, int] = {}
        for r in self.readers:
            if r.closed:
                codes[r.close_code] = codes.get(r.close_code, 0) + 1
        by_kind: dict[str, dict[str, int]] = {}
        for r in self.readers:
            tally = by_kind.setdefault(r.kind, {"readers": 0, "got": 0, "gaps": 0, "dups": 0})
            tally["readers"] += 1
            tally["got"] += r.got
            tally["gaps"] += r.gaps
            tally["dups"] += r.dups
        return {
            "by_kind": by_kind,
            "readers": len(self.readers),
            "open": len(live),
            "closed_by_code": codes,
            "expected": published * len(self.readers),
            "got": got,
            "gaps": sum(r.gaps for r in self.readers),
            "dups": sum(r.dups for r in self.readers),
            "late": STATS.late,
            "latencies": path,
            "cpu": _cpu(),
        }

    def close(self) -> dict[str, object]:
        for reader in self.readers:
            t = reader.transport
            if t is not None and not t.is_closing():
                sock = t.get_extra_info("socket")
                if sock is not None:  # RST: no TIME_WAIT left behind on the load side
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                t.abort()
        self.readers.clear()
        return {"ok": True}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["cmd"]
        if op == "connect":
            answer = await worker.connect(cmd)
        elif op == "start":
            answer = worker.start(int(cmd["first"]), bool(cmd.get("by_id")))
        elif op == "progress":
            answer = worker.progress()
        elif op == "report":
            answer = worker.report(int(cmd["last"]))
        elif op == "close":
            answer = worker.close()
        elif op == "exit":
            worker.close()
            print(json.dumps({"ok": True}), flush=True)
            break
        else:
            answer = {"error": f"unknown command {op}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
