"""Batch posts against single-event posts, through a real uvicorn server on loopback.

The same client (`wrk` with bench/batch.lua) and the same server, in the same run, post
`note_added` events to ~100 open migrations of one partner, without If-Match:
- single: one event per POST /v1/migrations/{id}/events (today's path);
- array:  an array of SIZE events per POST /v1/migrations/{id}/events (one transaction);
- across: SIZE items per POST /v1/events:batch, each on a random migration (decided one by
  one, stored in one transaction).
The modes alternate, RUNS times each; each segment lasts SECONDS. Two rates: the events
acknowledged (201s, or 200s with SIZE items, times the events each carried) over wrk's own
duration, which leaves out the requests in flight when wrk stops; and the events landed in the
store (those too) over the time until the last of them landed. Server CPU is the uvicorn
process's utime + stime (/proc/<pid>/stat) from the start of a segment until the store is quiet
and the in-process projector has caught up, per event landed, so projecting the events is
counted too.

Usage: python -m bench.batch [--store sqlite|postgres|both] [--seconds S] [--runs R]
       [--connections C] [--size N] [--migrations M]
Needs wrk (Debian: apt-get install wrk). Figures: docs/performance.md, section 7.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.append_inprocess import open_migrations
from bench.common import median, save_results, store, table
from bench.server import serving
from domain.access import issue_key
from domain.application import Tracker

SCRIPT = Path(__file__).with_name("batch.lua")
MODES = ("single", "array", "across")
CATCH_UP_TIMEOUT = 300.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_events(tracker: Tracker) -> int:
    return tracker.recorder.max_notification_id() or 0


def quiet(tracker: Tracker, still: float = 2.0) -> tuple[int, float]:
    """The store's head once it has not moved for `still` seconds, and when it last moved
    (time.monotonic()): requests wrk left in flight when it stopped (the server finishes them)
    land in the segment that sent them."""
    head, since, start = stored_events(tracker), time.monotonic(), time.monotonic()
    while time.monotonic() - since < still:
        time.sleep(0.05)
        now = stored_events(tracker)
        if now != head:
            head, since = now, time.monotonic()
        if time.monotonic() - start > CATCH_UP_TIMEOUT:
            raise TimeoutError("the store kept growing after the load stopped")
    return head, since


def caught_up(http: httpx.Client, token: str) -> float:
    """Seconds until every view has processed the store's head (GET /readyz)."""
    start = time.monotonic()
    while True:
        body = http.get("/readyz", headers={"Authorization": f"Bearer {token}"}).json()
        if not any(view["lag"] for view in body.get("views", {}).values()):
            return time.monotonic() - start
        if time.monotonic() - start > CATCH_UP_TIMEOUT:
            raise TimeoutError(f"the views did not catch up: {body}")
        time.sleep(0.05)


def wrk(url: str, ids: Path, token: str, mode: str, size: int, seconds: float, conns: int) -> dict:
    command = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{round(seconds)}s",
        "--timeout",
        "60s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(ids),
        token,
        mode,
        str(size),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {run.stdout[-2000:]} {run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def segment(
    url: str, proc: Any, tracker: Tracker, token: str, ids: Path, mode: str, args: Any
) -> dict:
    size = 1 if mode == "single" else args.size
    with httpx.Client(base_url=url, timeout=30) as http:
        caught_up(http, token)
        before, cpu_before = stored_events(tracker), cpu_seconds(proc.pid)
        started = time.monotonic()
        result = wrk(url, ids, token, mode, size, args.seconds, args.connections)
        after, last = quiet(tracker)
        lag_seconds = caught_up(http, token)
        cpu = cpu_seconds(proc.pid) - cpu_before
    landed = after - before
    ok = result["statuses"].get("200" if mode == "across" else "201", 0)
    acknowledged = ok * size
    seconds = result["duration_us"] / 1e6
    return {
        "mode": mode,
        "size": size,
        **result,
        "seconds": seconds,
        "acknowledged": acknowledged,
        "landed": landed,
        "events_per_second": acknowledged / seconds,
        # Every event the load stored, over the time until the last of them landed.
        "landed_per_second": landed / (last - started),
        "requests_per_second": result["requests"] / seconds,
        "server_cpu_seconds": cpu,
        "cpu_ms_per_event": 1000 * cpu / max(landed, 1),
        "catch_up_seconds": lag_seconds,
    }


def one_store(kind: str, args: Any) -> list[dict]:
    out: list[dict] = []
    with store(kind) as env, tempfile.TemporaryDirectory(prefix="csp-batch-") as tmp:
        tracker = Tracker(env=env)
        try:
            migrations = open_migrations(tracker, args.migrations)
            token = issue_key(tracker, "bench", "account_admin", "fabrikam").token
            ids = Path(tmp) / "ids.txt"
            ids.write_text("\n".join(str(m) for m in migrations) + "\n")
            with serving(env, workers=1) as (url, proc):
                for mode in MODES:  # warm-up: pools, caches, the first snapshots
                    warm = argparse.Namespace(**{**vars(args), "seconds": 2})
                    segment(url, proc, tracker, token, ids, mode, warm)
                for run in range(args.runs):
                    for mode in MODES:
                        result = segment(url, proc, tracker, token, ids, mode, args)
                        result["run"] = run
                        out.append(result)
                        print(
                            f"{kind} run {run} {mode}: {result['events_per_second']:,.0f} "
                            f"events/s acknowledged, {result['landed_per_second']:,.0f} "
                            f"landed, {result['cpu_ms_per_event']:.3f} ms CPU/event, "
                            f"statuses {result['statuses']}, landed {result['landed']} "
                            f"(acknowledged {result['acknowledged']})",
                            flush=True,
                        )
        finally:
            tracker.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--migrations", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results: dict[str, list[dict]] = {}
    rows = []
    for kind in kinds:
        results[kind] = one_store(kind, args)
        by_mode = {mode: [r for r in results[kind] if r["mode"] == mode] for mode in MODES}
        single = median([r["events_per_second"] for r in by_mode["single"]])
        single_landed = median([r["landed_per_second"] for r in by_mode["single"]])
        for mode in MODES:
            runs = by_mode[mode]
            eps = median([r["events_per_second"] for r in runs])
            landed = median([r["landed_per_second"] for r in runs])
            rows.append(
                [
                    kind,
                    mode,
                    runs[0]["size"],
                    median([r["requests_per_second"] for r in runs]),
                    eps,
                    eps / single,
                    landed,
                    landed / single_landed,
                    median([r["cpu_ms_per_event"] for r in runs]),
                    median([r["p50_ms"] for r in runs]),
                    median([r["p99_ms"] for r in runs]),
                ]
            )
    table(
        f"Batch posts vs single posts, events/s acknowledged (median of {args.runs} runs of "
        f"{args.seconds:g} s, wrk, {args.connections} connections, 1 uvicorn worker)",
        [
            "store",
            "mode",
            "events/request",
            "requests/s",
            "acknowledged events/s",
            "ratio to single",
            "landed events/s",
            "ratio to single",
            "server CPU ms/event",
            "p50 ms",
            "p99 ms",
        ],
        rows,
    )
    save_results("batch", {"args": vars(args), "results": results, "rows": rows})


if __name__ == "__main__":
    main()
