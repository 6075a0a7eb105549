"""600 readers from 60 source addresses through the shipped load balancer: every brief once,
in order, also while each livefeed process is restarted in turn (a rolling deploy)."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.readers import Reader
from tests.deploy.stack import Node, Stack
from tests.helpers import FACTOR, TIMEOUT, auth, wait_for
from tests.reliability.checker import GOING_AWAY
from tests.reliability.toolkit import Publisher, Watch, position

ADDRESSES = [f"127.0.0.{x}" for x in range(2, 62)]  # 60 source addresses
PER_ADDRESS = 10  # well under the default cap of 100 per address and process


async def _readers_on(node: Node) -> int:
    """WebSocket readers connected to one process, from its internal metrics port."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.get(f"http://127.0.0.1:{node.metrics_port}/metrics")
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "livefeed_connected_clients" and sample.labels == {"transport": "ws"}:
                return int(sample.value)
    raise AssertionError("no livefeed_connected_clients in /metrics")


async def _spread(stack: Stack, readers: int) -> list[int]:
    """How many readers each process has, once every reader is counted by one."""
    per_node: list[int] = []

    async def all_counted() -> bool:
        per_node[:] = [await _readers_on(node) for node in stack.nodes]
        return sum(per_node) == readers

    await wait_for(all_counted, what="every reader counted by a process")
    return per_node


async def _publish(stack: Stack, *texts: str) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=TIMEOUT) as api:
        for text in texts:
            response = await api.post("/api/briefs", json={"text": text}, headers=auth(stack.token))
            assert response.status_code == 201, response.text


async def _drain(stack: Stack, node: Node) -> float:
    """SIGTERM one process and wait until /readyz says 503 and it exits (0); when it did."""
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    sent_at = time.monotonic()
    async with httpx.AsyncClient(base_url=node.url, timeout=1) as direct:

        async def not_ready() -> bool:
            try:
                return (await direct.get("/readyz")).status_code == 503
            except httpx.HTTPError:
                return False

        await wait_for(not_ready, what=f"/readyz of process {node.index} to say 503")
    process = node.process
    await wait_for(lambda: process.poll() is not None, 30 * FACTOR, "it to exit")
    assert process.returncode == 0, stack.output(node)
    exited_at = time.monotonic()
    print(f"[deploy] process {node.index}: SIGTERM to exit {exited_at - sent_at:.2f}s")
    return exited_at


async def _rolling_restart(stack: Stack, readers: list[Reader]) -> list[float]:
    """Each process drained and started again in turn, once every reader is live again;
    how long after each exit that took."""
    resumed_after: list[float] = []
    for node in stack.nodes:
        exited_at = await _drain(stack, node)
        await wait_for(
            lambda: all(r.live.is_set() for r in readers),
            30 * FACTOR,
            "every reader to be subscribed again",
        )
        resumed_after.append(time.monotonic() - exited_at)
        print(f"[deploy] all readers live again {resumed_after[-1]:.2f}s after its exit")
        stack.start_node(node)
        await asyncio.to_thread(stack.wait_ready, node)
    return resumed_after


async def test_600_readers_get_every_brief_once_in_order_through_a_rolling_restart(
    stack: Stack,
) -> None:
    since = await position(stack.url)
    readers = [
        Reader(stack.ws_url, address, since, name=f"{address}#{n}")
        for address in ADDRESSES
        for n in range(PER_ADDRESS)
    ]
    publisher = Publisher(stack.url, stack.token, rate=5.0, label="rolling")
    # Every reader at once: their arrival through nginx is part of what is measured.
    watch = Watch(readers, publisher, stack.redis_url, stack.compose_prefix, since=since)
    watch.batch, watch.start_timeout = len(readers), 60 * FACTOR
    started = time.monotonic()
    async with watch:
        connected_in = time.monotonic() - started
        per_node = await _spread(stack, len(readers))
        assert all(count > 0 for count in per_node), per_node
        # Steady state: a few briefs reach every reader once, in order.
        await _publish(stack, *(f"Before the deploy, brief {n}" for n in range(5)))
        watch.check(await watch.settle(timeout=30 * FACTOR))
        # The rolling restart, with briefs published all along.
        publisher.start(seconds=3600)
        resumed_after = await _rolling_restart(stack, readers)
        publisher.stop()
        await _publish(stack, "After the deploy")
        truth = await watch.settle(timeout=30 * FACTOR)

    nginx_errors = [
        line
        for line in stack.nginx_log.read_text().splitlines()
        if "recv() failed" not in line and "Connection refused" not in line
    ]
    assert publisher.by_status() == {201: len(publisher.answers)}, (
        publisher.failures()[:3],
        nginx_errors[-10:],
    )
    watch.check(truth)  # every brief, once, in order
    for reader in readers:
        # Sent away at most once per restarted process, always with 1001: a reader never
        # landed on a draining process (it refuses with 503 and nginx moves on).
        assert all(code == GOING_AWAY for code in reader.closes), (reader.name, reader.closes)
        assert len(reader.closes) <= len(stack.nodes), (reader.name, reader.closes)
    lost = sum(len(set(truth) - set(r.ids["briefs"])) for r in readers)
    duplicated = sum(len(r.ids["briefs"]) - len(set(r.ids["briefs"])) for r in readers)
    moved = sum(len(r.closes) for r in readers)
    gaps = sorted(gap for r in readers for gap in r.resume_gaps())
    unavailable = sum(r.unavailable for r in readers)
    print(
        f"[deploy] {len(readers)} readers from {len(ADDRESSES)} addresses connected through "
        f"nginx in {connected_in:.2f}s, spread {per_node} over the processes"
    )
    print(
        f"[deploy] rolling restart: {len(truth)} briefs to every reader, lost {lost}, "
        f"duplicated {duplicated}; {moved} moves; all readers live again within "
        f"{max(resumed_after):.2f}s of each process's exit; per move, closed to subscribed "
        f"again: median {gaps[len(gaps) // 2]:.2f}s, max {gaps[-1]:.2f}s; "
        f"{unavailable} subscribes answered 'unavailable' and repeated"
    )
