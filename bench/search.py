"""Text search (`GET /v1/migrations?q=`): the trigram-indexed query against the substring scan
it replaced, in the same run, on the same store, by store size; with the query plans.

The baseline is the old statement itself (a LIKE '%…%' on the lowered columns of the
migrations view, as it was in projections/queries.py before the search table), run beside the
new `Queries.list_migrations` in turns, so both see the same machine. Times are in-process (the
statements plus decoding and describing the page: what the route does, without HTTP).

Usage: python -m bench.search [--store sqlite|postgres|both] [--sizes 10000 1000000]
       [--runs 30] [--write-cost] (also: a catch-up from 0 with and without the search writes)
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import explain, percentile, save_results, statements, store, table
from bench.generate import generate
from domain.application import Tracker
from domain.view import describe
from projections import ReadSide, rows
from projections.projector import ReadModelProjection

OLD_SQL = (
    "SELECT id, version, state FROM {migrations} WHERE "
    "(LOWER(customer_name) LIKE ? OR LOWER(tenant_id) LIKE ? OR LOWER(id) LIKE ?) "
    "ORDER BY id LIMIT ?"
)


def old_search(read_side: ReadSide, text: str, limit: int = 100) -> list[dict]:
    """The query before the search table (baseline)."""
    pattern = "%" + text.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
    now = datetime.now(UTC)
    found = read_side.view.fetch(OLD_SQL, [pattern] * 3 + [limit])
    return [describe(r["id"], r["version"], rows.load_state(r["state"]), now) for r in found]


def new_search(read_side: ReadSide, text: str, limit: int = 100) -> list[dict]:
    return read_side.queries.list_migrations(now=datetime.now(UTC), text=text, limit=limit)[0]


def texts(read_side: ReadSide) -> dict[str, str]:
    """The searches: what users type (part of a name, of a domain, of an id) and the extremes
    (a text in every row, two characters, nothing)."""
    some_id = read_side.view.fetch("SELECT id FROM {migrations} ORDER BY id LIMIT 1 OFFSET 7")
    return {
        "name, one match (read_side's)": "customer 77 ",
        "domain part": "customer77.onmicros",
        "id prefix, 8 chars": some_id[0]["id"][:8],
        "name, more rows with size": "customer 12",
        "in every row": "ltd",
        "2 chars, common": "77",
        "2 chars, in no row": "zq",
        "no match": "zzz",
    }


def latencies(read_side: ReadSide, searches: dict[str, str], runs: int) -> dict[str, Any]:
    """p50/p95 ms of old and new for each search, taken in turns (one warm-up each)."""
    samples: dict[str, dict[str, list[float]]] = {n: {"old": [], "new": []} for n in searches}
    fns = {"old": old_search, "new": new_search}
    rows_returned = {}
    for name, text in searches.items():
        old, new = old_search(read_side, text), new_search(read_side, text)
        if [m["id"] for m in old] != [m["id"] for m in new]:
            raise AssertionError(f"{name!r}: the new search answers differently")
        rows_returned[name] = len(new)
    for _ in range(runs):
        for name, text in searches.items():
            for which, fn in fns.items():
                t0 = time.perf_counter()
                fn(read_side, text)
                samples[name][which].append(time.perf_counter() - t0)
    return {
        name: {
            "rows": rows_returned[name],
            **{
                which: {
                    "p50_ms": percentile(s, 50) * 1000,
                    "p95_ms": percentile(s, 95) * 1000,
                }
                for which, s in by.items()
            },
        }
        for name, by in samples.items()
    }


def plans(read_side: ReadSide, searches: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    out = {}
    view = read_side.view
    for name, text in searches.items():
        entry = {}
        for which, fn in (("old", old_search), ("new", new_search)):
            with statements(view) as calls:
                fn(read_side, text)
            entry[which] = [line for sql, p in calls for line in explain(view, sql, p)]
        out[name] = entry
    return out


def catch_up_rate(tracker: Tracker, read_side: ReadSide, *, search: bool) -> float:
    """Events/s of a rebuild of every view from 0, with or without the search writes."""
    original = ReadModelProjection._search
    if not search:
        ReadModelProjection._search = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        return read_side.rebuild()["events_per_second"]
    finally:
        ReadModelProjection._search = original  # type: ignore[method-assign]


def one_size(kind: str, size: int, runs: int, write_cost: bool) -> dict[str, Any]:
    with store(kind) as env:
        tracker = Tracker(env=env)
        t0 = time.perf_counter()
        made = generate(tracker, size)
        generated = time.perf_counter() - t0
        read_side = ReadSide(tracker, env)
        t0 = time.perf_counter()
        read_side.catch_up()
        projected = time.perf_counter() - t0
        if kind == "postgres":  # the statistics autovacuum would gather a minute later
            with read_side.view.write() as c:
                c.execute(read_side.view.sql("ANALYZE {migrations}"))
                c.execute(read_side.view.sql("ANALYZE {migration_search}"))
                c.execute(read_side.view.sql("ANALYZE {migration_search_words}"))
        count = read_side.view.fetch("SELECT COUNT(*) AS n FROM {migrations}")[0]["n"]
        result: dict[str, Any] = {
            "size": size,
            "events": tracker.recorder.max_notification_id(),
            "migrations": count,
            "generate_seconds": generated,
            "catch_up_seconds": projected,
        }
        print(f"{kind} {size:,}: {made.events:,} events, {count:,} migrations", flush=True)
        if write_cost:
            # Alternated, twice each, so drift on a shared machine does not favour one.
            rates: dict[str, list[float]] = {"with": [], "without": []}
            for _ in range(2):
                rates["without"].append(catch_up_rate(tracker, read_side, search=False))
                rates["with"].append(catch_up_rate(tracker, read_side, search=True))
            result["catch_up_rate"] = {k: max(v) for k, v in rates.items()}
        searches = texts(read_side)
        result["texts"] = searches
        result["plans"] = plans(read_side, searches)
        result["queries"] = latencies(read_side, searches, runs)
        read_side.close()
        tracker.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--write-cost", action="store_true")
    parser.add_argument("--name", default="search", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {k: [one_size(k, s, args.runs, args.write_cost) for s in args.sizes] for k in kinds}
    for k, rs in results.items():
        first, last = rs[0], rs[-1]
        ends = (first, last) if len(rs) > 1 else (first,)
        ratios = len(rs) > 1
        table(
            f"Text search on {k}: p50 / p95 ms, old scan vs trigram index ({args.runs} runs, "
            "in-process)",
            [
                "search",
                "rows returned",
                *[f"{which} {r['events']:,} events" for r in ends for which in ("old", "new")],
                *(["old p95 ratio", "new p95 ratio"] if ratios else []),
            ],
            [
                [
                    f"{name} `{first['texts'][name]}`",
                    " / ".join(str(r["queries"][name]["rows"]) for r in ends),
                    *[
                        f"{r['queries'][name][which]['p50_ms']:.1f} / "
                        f"{r['queries'][name][which]['p95_ms']:.1f}"
                        for r in ends
                        for which in ("old", "new")
                    ],
                    *(
                        [
                            last["queries"][name][which]["p95_ms"]
                            / first["queries"][name][which]["p95_ms"]
                            for which in ("old", "new")
                        ]
                        if ratios
                        else []
                    ),
                ]
                for name in first["queries"]
            ],
        )
        if "catch_up_rate" in first:
            table(
                f"Catch-up from 0 on {k}, events/s (best of 2): with the search writes / without",
                ["events", "with", "without", "ratio"],
                [
                    [
                        r["events"],
                        r["catch_up_rate"]["with"],
                        r["catch_up_rate"]["without"],
                        r["catch_up_rate"]["with"] / r["catch_up_rate"]["without"],
                    ]
                    for r in rs
                ],
            )
    save_results(args.name, {"sizes": args.sizes, "results": results})
    print(f"\nplans written to bench/results/{args.name}.json")


if __name__ == "__main__":
    main()
