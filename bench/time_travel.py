"""Time travel: GET-equivalent `as_of` on a migration with many events, with and without
the library's snapshots (one every SNAPSHOT_INTERVAL events), against loading it now.

Usage: python -m bench.time_travel [--store sqlite|postgres|both] [--events 1000] [--runs R]
"""

from __future__ import annotations

import argparse
import functools

from bench.common import latencies, median, percentile, save_results, store, table
from bench.generate import long_migration
from domain.application import Tracker

REPEAT = 30


class WithoutSnapshots(Tracker):
    name = "csp_tracker"  # same tables
    snapshotting_intervals = {}


def measure(kind: str, events: int) -> dict:
    out = {}
    with store(kind) as env:
        writer = Tracker(env=env)
        m = long_migration(writer, events)
        history = writer.history(m.id)
        writer.close()
        cuts = {
            "as_of 10%": history[len(history) // 10].timestamp,
            "as_of 55%": history[len(history) * 55 // 100].timestamp,
            "as_of 99%": history[-10].timestamp,
        }
        no_cache = {**env, "AGGREGATE_CACHE_MAXSIZE": ""}
        for label, cls in (("snapshots", Tracker), ("no snapshots", WithoutSnapshots)):
            app = cls(env=no_cache)
            row = {"load now": latencies(functools.partial(app.get, m.id), REPEAT)}
            for cut, at in cuts.items():
                row[cut] = latencies(functools.partial(app.get, m.id, as_of=at), REPEAT)
            out[label] = {
                k: {"p50_ms": percentile(v, 50) * 1000, "p95_ms": percentile(v, 95) * 1000}
                for k, v in row.items()
            }
            app.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {k: [measure(k, args.events) for _ in range(args.runs)] for k in kinds}
    rows = []
    for k, runs in results.items():
        for op in runs[0]["snapshots"]:
            with_s = median([r["snapshots"][op]["p50_ms"] for r in runs])
            without = median([r["no snapshots"][op]["p50_ms"] for r in runs])
            rows.append([k, op, without, with_s, without / with_s])
    table(
        f"Loading a {args.events}-event migration, p50 ms (median of {args.runs} runs, "
        "aggregate cache off)",
        ["store", "operation", "no snapshots", "snapshots every 100", "speed-up"],
        rows,
    )
    save_results("time_travel", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
