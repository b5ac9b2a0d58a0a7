"""The full rebuild alone (`ReadSide.rebuild()` into empty views), on a kept SQLite store.

Usage: python -m bench.rebuild [--data DIR] [--size 1000000] [--runs 2]

The store is generated once into DIR (as `bench.read_side --data` keeps it: `sqlite-<size>.db`)
and each run rebuilds a fresh copy of it, so runs see the same events. Prints wall seconds,
this process's CPU seconds (on a shared machine the wall time includes waiting for a core)
and peak RSS. To compare with another version of the code in the same session, run the same
command from that version's tree (`PYTHONPATH=<tree>`) at the same time or in turns.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from api.settings import Settings
from bench.common import save_results, table
from bench.read_side import generated
from projections import ReadSide

COLUMNS = ("events", "seconds", "events_per_second", "cpu_seconds", "peak_rss_mb")


def one_run(data: Path, size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="csp-bench-", dir=data) as tmp:
        path = Path(tmp) / "bench.db"
        env = Settings(store="sqlite", sqlite_path=path).eventsourcing_env()
        tracker = generated("sqlite", size, env, data)
        read_side = ReadSide(tracker, env)
        cpu = time.process_time()
        result = read_side.rebuild()
        result["cpu_seconds"] = round(time.process_time() - cpu, 1)
        read_side.close()
        tracker.close()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "csp-bench")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    runs = [one_run(args.data, args.size) for _ in range(args.runs)]
    table(
        f"Full rebuild of a generated SQLite store ({args.size:,} events asked)",
        ["run", "events", "seconds", "events/s", "CPU seconds", "peak RSS MB (so far)"],
        [[i + 1, *(r[k] for k in COLUMNS)] for i, r in enumerate(runs)],
    )
    save_results("rebuild", {"size": args.size, "runs": runs})


if __name__ == "__main__":
    main()
