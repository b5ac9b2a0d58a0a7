"""Read side: catch-up/rebuild rate against reading the log, query latency by store size (with
the query plans), and CSV export rate and peak memory.

Usage: python -m bench.read_side [--store sqlite|postgres|both] [--sizes 10000 100000]
       [--large] (adds 1,000,000 events) [--data DIR]

--data DIR keeps each generated SQLite store in DIR (`sqlite-<size>.db`, events only) and
starts later runs from a copy of it instead of generating it again (a minute and a half at
1 M). The generated dates are relative to the day of generation, so delete the files to
measure "today's" data again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import explain, percentile, save_results, statements, store, table
from bench.generate import generate
from bench.server import ROOT, serving, settings_env
from domain.access import issue_key
from domain.application import Tracker
from projections import ReadSide

REPEAT = 30


def read_log_rate(tracker: Tracker) -> float:
    """Baseline: read and decode every notification, pages of 1000."""
    start, count, t0 = 0, 0, time.perf_counter()
    while True:
        page = tracker.recorder.select_notifications(start, 1000, inclusive_of_start=False)
        if not page:
            break
        for n in page:
            tracker.mapper.to_domain_event(n)
        count += len(page)
        start = page[-1].id
    return count / (time.perf_counter() - t0)


def rebuild_rate(read_side: ReadSide, view: str | None = None) -> float:
    return read_side.rebuild(view)["events_per_second"]


def queries(read_side: ReadSide, head: int) -> dict[str, dict[str, Any]]:
    """The query set, as HTTP paths, plus a way to run each in-process to capture its SQL."""
    today = datetime.now(UTC).date()
    q = read_side.queries
    now = datetime.now(UTC)
    return {
        "list, no filter": {
            "path": "/v1/migrations?limit=100",
            "run": lambda: q.list_migrations(now=now, limit=100),
        },
        "list, stage": {
            "path": "/v1/migrations?stage=provisioning&limit=100",
            "run": lambda: q.list_migrations(now=now, stage="provisioning"),
        },
        "list, stored risk": {
            "path": "/v1/migrations?risk=license_shortfall&limit=100",
            "run": lambda: q.list_migrations(now=now, risk="license_shortfall"),
        },
        "list, timed risk": {
            "path": "/v1/migrations?risk=expiring_unreplaced&limit=100",
            "run": lambda: q.list_migrations(now=now, risk="expiring_unreplaced"),
        },
        "list, tenant": {
            "path": "/v1/migrations?tenant_id=customer77.onmicrosoft.com",
            "run": lambda: q.list_migrations(now=now, tenant_id="customer77.onmicrosoft.com"),
        },
        "list, term end before": {
            "path": f"/v1/migrations?term_end_before={today + timedelta(days=30)}&limit=100",
            "run": lambda: q.list_migrations(now=now, term_end_before=today + timedelta(days=30)),
        },
        "list, text search": {
            "path": "/v1/migrations?q=customer%2077%20&limit=100",
            "run": lambda: q.list_migrations(now=now, text="customer 77 "),
        },
        "audit, deep cursor": {
            "path": f"/v1/audit?after={max(head - 2000, 0)}&limit=100",
            "run": lambda: q.audit(after=max(head - 2000, 0), limit=100),
        },
        "audit, newest first": {
            "path": "/v1/audit?order=desc&limit=100",
            "run": lambda: q.audit(order="desc", limit=100),
        },
        "dashboard summary": {"path": "/v1/dashboard/summary", "run": lambda: q.summary(now=now)},
    }


def plans(read_side: ReadSide, qs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """EXPLAIN each SQL statement a query runs."""
    out: dict[str, list[str]] = {}
    for name, spec in qs.items():
        with statements(read_side.view) as calls:
            spec["run"]()
        out[name] = [line for sql, params in calls for line in explain(read_side.view, sql, params)]
    return out


def http_latencies(url: str, token: str, qs: dict[str, dict[str, Any]]) -> dict[str, dict]:
    out = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for name, spec in qs.items():
            client.get(spec["path"]).raise_for_status()  # warm
            samples = []
            for _ in range(REPEAT):
                t0 = time.perf_counter()
                client.get(spec["path"]).raise_for_status()
                samples.append(time.perf_counter() - t0)
            out[name] = {
                "p50_ms": percentile(samples, 50) * 1000,
                "p95_ms": percentile(samples, 95) * 1000,
            }
    return out


# Peak RSS from /proc/self/status VmHWM: ru_maxrss would also count the parent's memory,
# because Linux carries the high-water mark of the forked copy across exec.
_EXPORT = (
    "import sys; from api.cli import main; rc = main(['export', '--format', 'csv']); "
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
    "sys.stderr.write(f'PEAK_RSS_KB {hwm}\\n'); sys.exit(rc)"
)


def export_run(env: dict[str, str]) -> dict[str, float]:
    """`csp-tracker export --format csv` in its own process: rows/s and its peak RSS."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        err = subprocess.run(
            [sys.executable, "-c", _EXPORT],
            env={**os.environ, **settings_env(env), "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.PIPE,
            check=True,
        ).stderr
        seconds = time.perf_counter() - t0
        out.seek(0)
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b"")) - 1
    peak = int(err.decode().rsplit("PEAK_RSS_KB ", 1)[1].split()[0]) / 1024
    return {"rows": rows, "rows_per_second": rows / seconds, "peak_rss_mb": peak}


def generated(kind: str, size: int, env: dict[str, str], data: Path | None) -> Tracker:
    """A tracker on the store `env` holding the generated events of `size`: copied from `data`
    when a copy is kept there (SQLite only), else generated (and kept there, if given)."""
    kept = None if data is None or kind != "sqlite" else data / f"sqlite-{size}.db"
    if kept is not None and kept.exists():
        shutil.copyfile(kept, env["SQLITE_DBNAME"])
        return Tracker(env=env)
    tracker = Tracker(env=env)
    generate(tracker, size)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(env["SQLITE_DBNAME"])) as db:
            db.execute("VACUUM INTO ?", (str(kept),))
    return tracker


def one_size(kind: str, size: int, data: Path | None = None) -> dict[str, Any]:
    with store(kind) as env:
        tracker = generated(kind, size, env, data)
        head = tracker.recorder.max_notification_id()
        assert head is not None  # generate() stored some
        read_side = ReadSide(tracker, env)
        result: dict[str, Any] = {"size": size, "notifications": head}
        result["read_log"] = read_log_rate(tracker)
        result["rebuild_all"] = rebuild_rate(read_side)
        result["export"] = export_run(env)  # on freshly projected views
        for view in ("migrations", "audit", "summary"):
            result[f"rebuild_{view}"] = rebuild_rate(read_side, view)
        qs = queries(read_side, head)
        result["plans"] = plans(read_side, qs)
        token = issue_key(tracker, "bench-auditor", "auditor", None).token
        read_side.catch_up()
        with serving(env, extra_env={"CSP_TRACKER_RUN_PROJECTIONS": "false"}) as (url, _):
            result["queries"] = http_latencies(url, token, qs)
        result["export_after_view_rebuilds"] = export_run(env)
        read_side.close()
        tracker.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--large", action="store_true", help="also 1,000,000 events")
    parser.add_argument(
        "--data", type=Path, default=None, help="keep generated SQLite stores here, and reuse them"
    )
    args = parser.parse_args()
    sizes = args.sizes + ([1_000_000] if args.large else [])
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {k: [one_size(k, s, args.data) for s in sizes] for k in kinds}

    table(
        "Catch-up / rebuild from position 0, events/s (ratio: against reading the log)",
        [
            "store",
            "events",
            "read log (decoded)",
            "rebuild all",
            "ratio",
            "migrations",
            "audit",
            "summary",
        ],
        [
            [
                k,
                r["notifications"],
                r["read_log"],
                r["rebuild_all"],
                r["rebuild_all"] / r["read_log"],
                r["rebuild_migrations"],
                r["rebuild_audit"],
                r["rebuild_summary"],
            ]
            for k, rs in results.items()
            for r in rs
        ],
    )
    for k, rs in results.items():
        names = list(rs[0]["queries"])
        table(
            f"Query latency over HTTP on {k}, p50 / p95 ms by store size ({REPEAT} requests)",
            ["query", *[f"{r['size']:,} events" for r in rs], "p95 ratio largest/smallest"],
            [
                [
                    n,
                    *[
                        f"{r['queries'][n]['p50_ms']:.1f} / {r['queries'][n]['p95_ms']:.1f}"
                        for r in rs
                    ],
                    rs[-1]["queries"][n]["p95_ms"] / rs[0]["queries"][n]["p95_ms"],
                ]
                for n in names
            ],
        )
    table(
        "CSV export of the whole audit view (csp-tracker export in its own process)",
        ["store", "rows", "rows/s", "peak RSS MB", "after per-view rebuilds: rows/s", "MB"],
        [
            [
                k,
                r["export"]["rows"],
                r["export"]["rows_per_second"],
                r["export"]["peak_rss_mb"],
                r["export_after_view_rebuilds"]["rows_per_second"],
                r["export_after_view_rebuilds"]["peak_rss_mb"],
            ]
            for k, rs in results.items()
            for r in rs
        ],
    )
    save_results("read_side", {"sizes": sizes, "results": results})
    print("\nplans written to bench/results/read_side.json")


if __name__ == "__main__":
    main()
