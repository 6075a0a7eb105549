"""Time the article page of a story with thousands of comments. Run by hand:

LIVEFEED_COMMENT_RATE=100000/second livefeed serve --editor-token bench &
python benchmarks/comments_page.py --url http://127.0.0.1:8000 --token bench --comments 5000

It creates an article, posts the comments through the API (one in five a reply), features
one, then loads the page (and the comments API) ``--runs`` times and prints the times from
request to the last byte on loopback: an upper bound of the server's time per page.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time

import httpx


async def fill(api: httpx.AsyncClient, slug: str, count: int, concurrency: int) -> list[str]:
    ids: list[str] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            body: dict[str, object] = {"author": f"Reader {i % 97}", "text": f"Comment {i}. " * 8}
            if i % 5 == 4 and ids:
                body["reply_to"] = ids[secrets.randbelow(len(ids))]
            response = await api.post(f"/api/articles/{slug}/comments", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def timed(api: httpx.AsyncClient, path: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = await api.get(path)
        response.raise_for_status()
        samples.append((time.perf_counter() - start) * 1000)
    return sorted(samples)


def summary(name: str, samples: list[float]) -> str:
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    return (
        f"{name}: n={len(samples)} p50 {statistics.median(samples):.1f} ms, "
        f"p95 {p95:.1f} ms, max {samples[-1]:.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--comments", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    slug = f"bench-{secrets.token_hex(3)}"
    headers = {"Authorization": f"Bearer {args.token}"}
    async with httpx.AsyncClient(base_url=args.url, timeout=30) as api:
        article = {"title": "A story with many comments", "summary": "Bench.", "body": ["Text."]}
        (await api.put(f"/api/articles/{slug}", json=article, headers=headers)).raise_for_status()
        start = time.perf_counter()
        ids = await fill(api, slug, args.comments, args.concurrency)
        took = time.perf_counter() - start
        print(f"posted {len(ids)} comments in {took:.1f} s ({len(ids) / took:.0f}/s)")
        featured = f"/api/articles/{slug}/comments/{ids[0]}/feature"
        (await api.post(featured, headers=headers)).raise_for_status()
        count = (await api.get(f"/api/articles/{slug}")).json()["comment_count"]
        print(f"article {slug}: comment_count {count}")
        await timed(api, f"/articles/{slug}", 3)  # warm up
        print(
            summary("GET /articles/<slug> (page)", await timed(api, f"/articles/{slug}", args.runs))
        )
        path = f"/api/articles/{slug}/comments?limit=50"
        print(
            summary("GET /api/articles/<slug>/comments?limit=50", await timed(api, path, args.runs))
        )


if __name__ == "__main__":
    asyncio.run(main())
