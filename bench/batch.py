"""Batch posts against single-event posts, through a real uvicorn server on loopback.

The same client (`wrk` with bench/events.lua) and the same server, in the same run, post
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
import tempfile
from pathlib import Path
from typing import Any

from bench.append_inprocess import load_targets
from bench.common import median, save_results, store, table
from bench.server import measure, serving, wrk_arguments
from domain.application import Tracker

MODES = ("single", "array", "across")


def segment(
    url: str, proc: Any, tracker: Tracker, token: str, ids: Path, mode: str, args: Any
) -> dict:
    size = 1 if mode == "single" else args.size
    script = [str(ids), token, mode, str(size)]
    result = measure(url, proc.pid, tracker, token, script, args.seconds, args.connections)
    ok = result["statuses"].get("200" if mode == "across" else "201", 0)
    acknowledged = ok * size
    seconds = result["seconds"]
    return {
        "mode": mode,
        "size": size,
        **result,
        "acknowledged": acknowledged,
        "events_per_second": acknowledged / seconds,
        # Every event the load stored, over the time until the last of them landed.
        "landed_per_second": result["landed"] / result["landed_seconds"],
        "requests_per_second": result["requests"] / seconds,
        "cpu_ms_per_event": 1000 * result["server_cpu_seconds"] / max(result["landed"], 1),
    }


def one_store(kind: str, args: Any) -> list[dict]:
    out: list[dict] = []
    with store(kind) as env, tempfile.TemporaryDirectory(prefix="csp-batch-") as tmp:
        tracker = Tracker(env=env)
        try:
            _, token, ids = load_targets(tracker, args.migrations, Path(tmp))
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
    parser = wrk_arguments(__doc__)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
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
