"""SSE framing: a comment containing U+2028 or U+2029 reaches SSE readers intact.

``str.splitlines()`` split the frame's JSON on them (JSON carries them raw), so the record
no longer parsed and the comment never reached SSE readers. The record is read here as an
EventSource reads it: lines end at \\n only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth

TEXT = "line\u2028separator and paragraph\u2029separator"


async def _records(response: httpx.Response, records: asyncio.Queue[dict[str, Any]]) -> None:
    """Parse the stream like a browser: split on \\n (bytes), join data lines with \\n."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            fields: dict[str, list[str]] = {}
            for line in block.decode().split("\n"):
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value.removeprefix(" "))
            if "event" in fields:
                records.put_nowait(
                    {"event": fields["event"][-1], "data": "\n".join(fields.get("data", []))}
                )


async def test_unicode_line_separators_arrive_intact_over_sse(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    article = {"title": "Seps", "summary": "s", "body": ["p"]}
    response = await api.put("/api/articles/seps", json=article, headers=auth(live_server.token))
    assert response.status_code == 201
    records: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    params = {"topic": "comments:seps"}
    async with api.stream("GET", "/events", params=params) as stream:
        reader = asyncio.create_task(_records(stream, records))
        try:
            first = await asyncio.wait_for(records.get(), TIMEOUT)
            assert first["event"] == "subscribed"
            comment = {"author": "Reader", "text": TEXT}
            response = await api.post("/api/articles/seps/comments", json=comment)
            assert response.status_code == 201, response.text
            record = await asyncio.wait_for(records.get(), TIMEOUT)
        finally:
            reader.cancel()
    assert record["event"] == "comment.created"
    assert json.loads(record["data"])["data"]["text"] == TEXT
