"""CSV export of the whole audit view: rows/s and the export process's peak RSS, on a store of
the given size projected by a plain catch-up.

Usage: python -m bench.export [--store sqlite|postgres|both] [--events 1000000]
"""

from __future__ import annotations

import argparse

from bench.common import save_results, store, table
from bench.generate import generate
from bench.read_side import export_run
from domain.application import Tracker
from projections import ReadSide


def measure(kind: str, events: int) -> dict:
    with store(kind) as env:
        tracker = Tracker(env=env)
        generate(tracker, events)
        read_side = ReadSide(tracker, env)
        read_side.catch_up()
        read_side.close()
        tracker.close()
        return export_run(env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {k: measure(k, args.events) for k in kinds}
    table(
        "CSV export of the whole audit view (csp-tracker export, its own process)",
        ["store", "rows", "rows/s", "peak RSS MB (VmHWM)"],
        [[k, r["rows"], r["rows_per_second"], r["peak_rss_mb"]] for k, r in results.items()],
    )
    save_results("export", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
