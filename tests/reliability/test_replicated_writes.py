"""``LIVEFEED_REDIS_MIN_REPLICAS``: a write is acknowledged only once replicas confirm it.

On a Redis with no replica, a write with ``MIN_REPLICAS=1`` is answered 503 with
Retry-After. The write is on the primary (docs/reliability.md says so): it is listed, a
retry of the same correction is safe, and its event reaches readers through the history
— never live before the confirmation a failover could take back.
"""

from __future__ import annotations

import httpx
import websockets

from livefeed.settings import Settings
from tests.conftest import LiveServer
from tests.helpers import TIMEOUT, auth, expect_silence, subscribe


async def test_a_write_no_replica_confirms_is_refused_but_kept_and_not_sent_live(
    settings: Settings,
) -> None:
    server = LiveServer(settings.with_(redis_min_replicas=1))
    await server.start()
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as api,
            websockets.connect(server.ws_url) as ws,
        ):
            since = (await api.get("/api/briefs", params={"limit": 1})).json()["last_event_id"]
            await subscribe(ws, "briefs", since)
            answer = await api.post(
                "/api/briefs", json={"text": "unconfirmed"}, headers=auth(server.token)
            )
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"]
            # A second refusal (each waits 1 s for the replica): writes were refused for >= 1 s.
            again = await api.post(
                "/api/briefs", json={"text": "unconfirmed too"}, headers=auth(server.token)
            )
            assert again.status_code == 503, again.text
            await expect_silence(ws, 0.5)  # not published live: nothing confirmed it
            listed = (await api.get("/api/briefs")).json()["items"]
            assert [b["text"] for b in listed][:2] == ["unconfirmed too", "unconfirmed"]  # kept
            metrics = (await api.get("/metrics")).text
            refused = next(
                line
                for line in metrics.splitlines()
                if line.startswith("livefeed_redis_writes_refused_seconds_total ")
            )
            assert float(refused.split()[1]) >= 1.0
            ready = (await api.get("/readyz")).json()
            assert ready["redis"] == {"deployment": "standalone", "role": "master"}
        async with websockets.connect(server.ws_url) as ws:
            frames = await subscribe(ws, "briefs", since)  # a resume gets it from history
            published = [f["data"]["text"] for f in frames if f["type"] == "brief.published"]
            assert published == ["unconfirmed", "unconfirmed too"]
    finally:
        await server.stop()
