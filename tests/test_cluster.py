"""livefeed on a real 3-master Redis Cluster: sharded fan-out, resume, ingest, across nodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import websockets

from livefeed.settings import Settings
from livefeed.storage.keys import Keys
from tests.cluster import RedisCluster
from tests.conftest import LiveServer, settings_for
from tests.helpers import auth, expect_silence, recv_json, running, started, subscribe, wait_for
from tests.security.redaction import assert_ws_replays_redacted, retract_and_hide


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with started(RedisCluster(Path(tmp_path_factory.mktemp("cluster")))) as cluster:
        yield cluster


@pytest.fixture
def settings(cluster: RedisCluster, prefix: str) -> Settings:
    return settings_for(cluster.url, prefix).with_(editor_token="t")


def _slots_used(cluster: RedisCluster, keys: list[str]) -> set[str]:
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    try:
        return {client.get_node_from_key(k).name for k in keys}
    finally:
        client.close()


async def test_topics_spread_over_the_masters_and_every_reader_gets_its_events(
    live_server: LiveServer, api, cluster: RedisCluster
) -> None:
    keys = Keys(live_server.settings.redis_prefix)
    slugs = [f"story-{i}" for i in range(8)]
    # The test only proves sharding if the topics really live on different masters.
    assert len(_slots_used(cluster, [keys.channel(f"comments:{s}") for s in slugs])) >= 2
    for slug in slugs:
        body = {"title": slug, "summary": "s", "body": ["p"]}
        assert (
            await api.put(f"/api/articles/{slug}", json=body, headers=auth("t"))
        ).status_code == 201
    readers = {slug: await websockets.connect(live_server.ws_url) for slug in slugs}
    try:
        for slug, ws in readers.items():
            await subscribe(ws, f"comments:{slug}")
        for slug in slugs:
            response = await api.post(
                f"/api/articles/{slug}/comments", json={"author": "A", "text": slug}
            )
            assert response.status_code == 201
        for slug, ws in readers.items():
            event = await recv_json(ws)
            assert event["type"] == "comment.created" and event["data"]["text"] == slug
            await expect_silence(ws, 0.1)
    finally:
        for ws in readers.values():
            await ws.close()


async def test_resume_on_a_cluster_replays_exactly_the_missed_events(
    live_server: LiveServer, api
) -> None:
    async with websockets.connect(live_server.ws_url) as ws:
        await subscribe(ws, "briefs")
        await api.post("/api/briefs", json={"text": "seen"}, headers=auth("t"))
        seen = (await recv_json(ws))["id"]
    missed = [
        (await api.post("/api/briefs", json={"text": f"m{i}"}, headers=auth("t"))).json()
        for i in range(4)
    ]
    async with websockets.connect(live_server.ws_url) as ws:
        frames = await subscribe(ws, "briefs", since=seen)
    assert [f["data"]["id"] for f in frames[:-1]] == [b["id"] for b in missed]
    assert frames[-1]["recovered"] is True


async def test_two_processes_on_one_cluster_act_as_one(
    settings: Settings, api, live_server: LiveServer
) -> None:
    async with running(LiveServer(settings)) as other, websockets.connect(other.ws_url) as ws:
        await subscribe(ws, "briefs")
        response = await api.post("/api/briefs", json={"text": "across"}, headers=auth("t"))
        assert (await recv_json(ws))["data"]["id"] == response.json()["id"]


async def test_ingest_works_on_a_cluster(live_server: LiveServer, cluster: RedisCluster) -> None:
    prefix = live_server.settings.redis_prefix
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    try:
        async with websockets.connect(live_server.ws_url) as ws:
            await subscribe(ws, "briefs")
            client.xadd(f"{prefix}ingest", {"brief": json.dumps({"text": "from the stream"})})
            assert (await recv_json(ws))["data"]["text"] == "from the stream"
            # A classic PUBLISH reaches every node of a cluster, so any subscriber hears it.
            client.publish(f"{prefix}ingest", json.dumps({"text": "from pub/sub", "id": "ps-1"}))
            assert (await recv_json(ws))["data"]["id"] == "ps-1"
            client.xadd(f"{prefix}ingest", {"brief": b"{not json"})

            def dead_lettered() -> bool:
                return client.xlen(f"{prefix}ingest:dead") == 1

            await wait_for(dead_lettered, what="the bad entry in the dead-letter stream")
    finally:
        client.close()


async def test_the_hub_is_ready_on_every_master(live_server: LiveServer, api) -> None:
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_threads_reports_and_counts_work_on_a_cluster(live_server: LiveServer, api) -> None:
    body = {"title": "t", "summary": "s", "body": ["p"]}
    assert (await api.put("/api/articles/threads", json=body, headers=auth("t"))).status_code == 201
    base = "/api/articles/threads/comments"
    top = (await api.post(base, json={"author": "A", "text": "top"})).json()
    reply = await api.post(base, json={"author": "B", "text": "re", "reply_to": top["id"]})
    assert reply.status_code == 201
    listing = (await api.get(base)).json()
    assert [r["id"] for r in listing["items"][0]["replies"]] == [reply.json()["id"]]
    report = await api.post(f"{base}/{top['id']}/reports", json={"reason": "spam"})
    assert report.status_code == 202
    queue = await api.get("/api/moderation?state=reported", headers=auth("t"))
    assert [i["id"] for i in queue.json()["items"]] == [top["id"]]
    featured = await api.post(f"{base}/{top['id']}/feature", headers=auth("t"))
    assert featured.status_code == 200
    assert (await api.get("/api/articles/threads")).json()["comment_count"] == 2


async def test_the_article_page_is_revalidated_across_masters(
    live_server: LiveServer, api, cluster: RedisCluster
) -> None:
    # Its version reads topics of several masters in one round trip (a pipeline, not Lua).
    keys = Keys(live_server.settings.redis_prefix)
    topics = ["briefs", "article:spread", "comments:spread"]
    assert len(_slots_used(cluster, [keys.log(t) for t in topics])) >= 2
    assert (await api.get("/articles/spread")).status_code == 404
    body = {"title": "t", "summary": "s", "body": ["p"], "comment_mode": "open"}
    assert (await api.put("/api/articles/spread", json=body, headers=auth("t"))).status_code == 201
    etag = (await api.get("/articles/spread")).headers["etag"]
    assert (await api.get("/articles/spread", headers={"If-None-Match": etag})).status_code == 304
    await api.post("/api/articles/spread/comments", json={"author": "A", "text": "first"})
    page = await api.get("/articles/spread", headers={"If-None-Match": etag})
    assert page.status_code == 200 and ">first<" in page.text
    await live_server.services.content.close_comments("spread", True)
    closed = await api.get("/articles/spread", headers={"If-None-Match": page.headers["etag"]})
    assert closed.status_code == 200 and "Comments are closed." in closed.text


async def test_a_retracted_brief_and_a_hidden_comment_are_redacted_on_a_cluster(
    live_server: LiveServer, api
) -> None:
    room = await retract_and_hide(api, live_server.token)
    await assert_ws_replays_redacted(live_server.ws_url, room)
