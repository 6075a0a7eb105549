"""The serving process freezes its readers' objects (serving/collector.py): that is safe only
if a reader's connection and the events it receives leave no cyclic garbage behind, which
only the collector could free. Counted here with ``gc.DEBUG_SAVEALL``: every object a
collection finds unreachable is kept in ``gc.garbage`` instead of freed.

The server runs on uvloop here (conftest.py), as ``livefeed serve`` does: asyncio's own
selector transport is a cycle per connection (it keeps a bound method of itself), uvloop's
is not."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter

import pytest

from livefeed import limits
from livefeed.serving.collector import freeze_if_grown
from tests.conftest import LiveServer, RedisServer
from tests.helpers import wait_for

READERS = 25
EVENTS = 5

# Readers and the publisher run in another process, so that only the server's own
# garbage is in this one.
_CLIENTS = r"""
import asyncio, json, sys
import websockets
from livefeed.events import BRIEF_PUBLISHED, BRIEFS
from livefeed.storage.connect import connect
from livefeed.storage.eventlog import EventLog
from livefeed.storage.keys import Keys

async def sse_readers(ws_url, redis_url, prefix, readers, events):
    host, port = ws_url.split("//")[1].split("/")[0].split(":")
    streams = []
    for _ in range(readers):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /events?topic={BRIEFS} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await reader.readuntil(b"event: subscribed")
        streams.append((reader, writer))
    redis = connect(redis_url)
    log = EventLog(redis, Keys(prefix), 1000, sharded=False)
    for n in range(events):
        await log.append(BRIEFS, BRIEF_PUBLISHED, {"id": f"gc{n}", "text": "x" * 200})
    for reader, writer in streams:
        for n in range(events):
            await reader.readuntil(f'"id":"gc{n}"'.encode())
        writer.close()
    await redis.aclose()

async def main(kind, ws_url, redis_url, prefix, readers, events):
    if kind == "sse":
        return await sse_readers(ws_url, redis_url, prefix, readers, events)
    sockets = [await websockets.connect(ws_url) for _ in range(readers)]
    for ws in sockets:
        await ws.send(json.dumps({"type": "subscribe", "topic": BRIEFS}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
    redis = connect(redis_url)
    log = EventLog(redis, Keys(prefix), 1000, sharded=False)
    for n in range(events):
        await log.append(BRIEFS, BRIEF_PUBLISHED, {"id": f"gc{n}", "text": "x" * 200})
    for ws in sockets:
        for n in range(events):
            assert json.loads(await ws.recv())["type"] == BRIEF_PUBLISHED
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
    for ws in sockets:
        await ws.close()
    await redis.aclose()

asyncio.run(main(*sys.argv[1:5], int(sys.argv[5]), int(sys.argv[6])))
"""


async def _readers_come_and_go(
    server: LiveServer, redis: RedisServer, readers: int, kind: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CLIENTS,
        kind,
        server.ws_url,
        redis.url,
        server.settings.redis_prefix,
        str(readers),
        str(EVENTS),
    )
    assert await asyncio.wait_for(process.wait(), 60) == 0
    await wait_for(
        lambda: not any(server.services.readers.counts().values()), what="every reader to leave"
    )


@pytest.mark.parametrize("kind", ["ws", "sse"])
async def test_readers_and_their_events_leave_no_cyclic_garbage(
    live_server: LiveServer, redis_server: RedisServer, kind: str
) -> None:
    # Once first, so what is built lazily on first use (scripts, caches) is there already.
    await _readers_come_and_go(live_server, redis_server, 2, kind)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.garbage.clear()
        await _readers_come_and_go(live_server, redis_server, READERS, kind)
        await asyncio.sleep(0.2)  # the server's last callbacks of the closed connections
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    kinds = Counter(type(thing).__qualname__ for thing in garbage)
    # What this test's own subprocess handling leaves is a few objects, once; a cycle per
    # reader or per event would be READERS or READERS * EVENTS of each kind in it.
    assert len(garbage) < READERS, kinds.most_common(12)


def test_what_reached_the_oldest_generation_is_frozen_once_there_is_enough_of_it() -> None:
    gc.collect()
    gc.freeze()
    try:
        assert not freeze_if_grown()  # nothing new lives in the oldest generation yet
        frozen = gc.get_freeze_count()
        kept = [[n] for n in range(limits.GC_FREEZE_AFTER)]  # each list a tracked object
        gc.collect()  # they survive it: they are in the oldest generation now
        garbage = [[]]
        garbage.append(garbage)  # a cycle: it must be collected, never frozen
        del garbage
        assert freeze_if_grown()
        assert gc.get_freeze_count() >= frozen + limits.GC_FREEZE_AFTER
        assert not any(isinstance(o, list) and o and o[0] is o for o in gc.get_objects())
        del kept
    finally:
        gc.unfreeze()
        gc.collect()
