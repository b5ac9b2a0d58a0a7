"""HTTP append: POST /v1/migrations/{id}/events through a real uvicorn server on loopback,
against the in-process baselines measured in the same run on the same store.

Usage: python -m bench.append_http [--store sqlite|postgres|both] [--requests N]
       [--concurrency C] [--workers 1 4] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import httpx

from bench.append_inprocess import command_rate, open_migrations, raw_save_rate
from bench.common import median, percentile, save_results, store, table
from bench.server import serving
from domain.access import issue_key
from domain.application import Tracker

MAX_SECONDS = 120  # the load generator stops by itself after this, whatever the count


async def load(
    url: str,
    token: str,
    ids: list,
    requests: int,
    concurrency: int,
    max_seconds: float = MAX_SECONDS,
) -> dict:
    """Send `requests` note_added events from `concurrency` clients; bounded in time."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(range(requests))
    rng = random.Random(3)
    deadline = time.monotonic() + max_seconds
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while queue and time.monotonic() < deadline:
            queue.pop()
            mid = rng.choice(ids)
            start = time.perf_counter()
            r = await client.post(
                f"{url}/v1/migrations/{mid}/events",
                json={"type": "note_added", "text": "load"},
                headers=headers,
            )
            latencies.append(time.perf_counter() - start)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    landed = statuses.get(201, 0)
    return {
        "events_per_second": landed / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "statuses": statuses,
    }


def one_run(kind: str, requests: int, concurrency: int, workers: list[int]) -> dict:
    out: dict = {}
    with store(kind) as env:
        tracker = Tracker(env=env)
        ids = open_migrations(tracker, 200)
        token = issue_key(tracker, "bench", "account_admin", "fabrikam").token
        out["raw_save"] = raw_save_rate(tracker, ids, requests)
        out["command"] = command_rate(tracker, ids, requests)
        tracker.close()
        for w in workers:
            with serving(env, workers=w) as (url, _proc):
                out[f"http_{w}w"] = asyncio.run(load(url, token, ids, requests, concurrency))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results: dict = {}
    rows = []
    for kind in kinds:
        runs = [
            one_run(kind, args.requests, args.concurrency, args.workers) for _ in range(args.runs)
        ]
        results[kind] = runs
        command = median([r["command"] for r in runs])
        raw = median([r["raw_save"] for r in runs])
        for w in args.workers:
            http = [r[f"http_{w}w"] for r in runs]
            eps = median([h["events_per_second"] for h in http])
            rows.append(
                [
                    kind,
                    w,
                    raw,
                    command,
                    eps,
                    eps / command,
                    median([h["p50_ms"] for h in http]),
                    median([h["p95_ms"] for h in http]),
                    median([h["p99_ms"] for h in http]),
                ]
            )
    table(
        f"HTTP append vs in-process, events/s (median of {args.runs} runs, "
        f"{args.requests} requests, {args.concurrency} concurrent clients)",
        [
            "store",
            "workers",
            "raw app.save",
            "in-process command",
            "HTTP",
            "HTTP/command",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        ],
        rows,
    )
    save_results("append_http", {"args": vars(args), "results": results, "rows": rows})


if __name__ == "__main__":
    main()
