"""POST a brief, time until a subscribed WebSocket reader receives it. Run by hand:

livefeed serve --editor-token bench &    # any running livefeed
python benchmarks/post_to_receive.py --url http://127.0.0.1:8000 --token bench -n 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx
import websockets


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    ws_url = args.url.replace("http", "ws", 1) + "/ws"
    samples = []
    async with websockets.connect(ws_url) as ws, httpx.AsyncClient(base_url=args.url) as api:
        await ws.send(json.dumps({"type": "subscribe", "topic": "briefs"}))
        await ws.recv()
        headers = {"Authorization": f"Bearer {args.token}"}
        for i in range(args.n):
            start = time.perf_counter()
            response = await api.post("/api/briefs", json={"text": f"bench {i}"}, headers=headers)
            response.raise_for_status()
            while json.loads(await ws.recv())["data"].get("id") != response.json()["id"]:
                pass
            samples.append((time.perf_counter() - start) * 1000)
            brief_id = response.json()["id"]
            await api.delete(f"/api/briefs/{brief_id}", headers=headers)
            await ws.recv()
    samples.sort()
    print(
        f"POST -> WebSocket receive, n={len(samples)}: "
        f"p50 {statistics.median(samples):.2f} ms, "
        f"p99 {samples[int(len(samples) * 0.99) - 1]:.2f} ms, max {samples[-1]:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
