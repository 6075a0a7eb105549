"""/events under fan-out: every reader gets each record once and in order, a reader whose
socket pushes back catches up, one that stops reading is dropped, silence gets heartbeats.

Run with the ``livefeed.body`` fast path (records written by the fan-out) and with plain
ASGI send, like every live-server transport test.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest

from livefeed import limits
from livefeed.events import decode_cursor
from livefeed.transports.records import RECORDS
from tests.conftest import LiveServer, RedisServer
from tests.helpers import TIMEOUT, auth, publish_while_busy, wait_for

pytestmark = pytest.mark.both_write_paths


class RawStream:
    """``GET /events`` on a raw socket with a tiny receive buffer: it reads only when told."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.body = b""  # de-chunked

    @classmethod
    async def open(cls, port: int, topic: str = "briefs") -> RawStream:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # The reader stops taking data from the socket past 128 KiB unread (twice its limit).
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        writer.write(f"GET /events?topic={topic} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"transfer-encoding: chunked" in head.lower(), head
        return cls(reader, writer)

    async def records(self, until: int) -> list[dict[str, str]]:
        """Records (fields by name) until ``until`` of them carry data, in the order read."""
        records: list[dict[str, str]] = []
        while sum("data" in r for r in records) < until:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                raise AssertionError(f"the stream ended after {len(records)} records")
            self.body += (await self.reader.readexactly(size + 2))[:-2]
            *complete, self.body = self.body.split(b"\n\n")
            for text in complete:
                fields = dict(line.split(": ", 1) for line in text.decode().split("\n"))
                records.append(fields)
        return records

    async def close(self) -> None:
        self.writer.close()


async def brief_ids(records: list[dict[str, str]]) -> list[str]:
    return [
        json.loads(r["data"])["data"]["id"] for r in records if r.get("event") == "brief.published"
    ]


async def test_every_reader_gets_the_same_record_once_and_it_is_counted_once_per_reader(
    live_server: LiveServer, api: httpx.AsyncClient, frames_extension: bool
) -> None:
    streams = [await RawStream.open(live_server.port) for _ in range(3)]
    try:
        for stream in streams:
            assert (await stream.records(1))[-1]["event"] == "subscribed"
        response = await api.post(
            "/api/briefs", json={"text": "Talks end"}, headers=auth(live_server.token)
        )
        assert response.status_code == 201
        brief_id = response.json()["id"]
        got = [(await stream.records(1))[-1] for stream in streams]
        assert all(r == got[0] for r in got), got
        assert json.loads(got[0]["data"])["data"]["id"] == brief_id
        stats = live_server.services.stats
        await wait_for(lambda: stats.delivered["sse"] == 3, what="three deliveries counted")
        # The fast path built the record once for all three; ASGI send never uses the cache.
        assert (brief_id.encode() in RECORDS.built) is frames_extension
    finally:
        for stream in streams:
            await stream.close()


async def test_events_published_while_the_process_is_busy_reach_each_stream_once_in_order(
    live_server: LiveServer, redis_server: RedisServer
) -> None:
    hub = live_server.services.hub
    streams = [await RawStream.open(live_server.port) for _ in range(2)]
    try:
        for stream in streams:
            assert (await stream.records(1))[-1]["event"] == "subscribed"
        gathered = hub.gathered
        publish_while_busy(redis_server.url, live_server.settings.redis_prefix, 3)
        for stream in streams:
            records = await asyncio.wait_for(stream.records(3), TIMEOUT)
            assert await brief_ids(records) == ["busy0", "busy1", "busy2"]
            # Each record's cursor is its own event's id: a reconnect resumes exactly.
            ids = [json.loads(r["data"])["id"] for r in records if "data" in r]
            assert [decode_cursor(r["id"]) for r in records if "data" in r] == [
                {"briefs": i} for i in ids
            ]
        assert hub.gathered >= gathered + 2  # handed out together
        stats = live_server.services.stats
        await wait_for(lambda: stats.delivered["sse"] == 6, what="six deliveries counted")
    finally:
        for stream in streams:
            await stream.close()


async def test_a_reader_whose_socket_pushes_back_catches_up_in_order(
    live_server: LiveServer,
) -> None:
    stream = await RawStream.open(live_server.port)
    try:
        await stream.records(1)
        # Small kernel buffers on the server's side too, so its transport has to push back.
        for connection in live_server.serving_state.connections:
            sock = connection.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        text = "x" * 4000  # 150 of them: well past the socket buffers, under the queue bound
        for i in range(150):
            await live_server.services.log.append(
                "briefs", "brief.published", {"id": str(i), "text": text}
            )
        records = await asyncio.wait_for(stream.records(150), TIMEOUT * 2)
        assert await brief_ids(records) == [str(i) for i in range(150)]
        assert live_server.services.stats.slow_disconnects["sse"] == 0
    finally:
        await stream.close()


async def test_a_reader_who_stops_reading_is_dropped_as_too_slow(
    live_server: LiveServer,
) -> None:
    stream = await RawStream.open(live_server.port)
    try:
        await stream.records(1)
        stats = live_server.services.stats
        text = "x" * 8192
        for i in range(1024):
            await live_server.services.log.append(
                "briefs", "brief.published", {"id": str(i), "text": text}
            )
            if stats.slow_disconnects["sse"]:
                break
        await wait_for(
            lambda: stats.slow_disconnects["sse"] == 1, what="the slow reader to be dropped"
        )
        readers = live_server.services.readers
        await wait_for(lambda: readers.counts()["sse"] == 0, what="the reader to be forgotten")
    finally:
        await stream.close()


async def test_silence_gets_a_heartbeat_and_records_still_flow(
    live_server: LiveServer, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "SSE_HEARTBEAT_INTERVAL", 0.2)
    params: Any = {"topic": "briefs"}
    async with api.stream("GET", "/events", params=params) as response:
        lines = response.aiter_lines()

        async def next_line(want: str) -> None:
            while not (await asyncio.wait_for(anext(lines), TIMEOUT)).startswith(want):
                pass

        await next_line("event: subscribed")
        await next_line(": heartbeat")
        response2 = await api.post(
            "/api/briefs", json={"text": "Storm"}, headers=auth(live_server.token)
        )
        assert response2.status_code == 201
        await next_line("event: brief.published")
        await next_line(": heartbeat")
