"""Group commit in-process: concurrent writers of different migrations, against one writer,
with group commit on (the default) and off (`GROUP_COMMIT_MAX_EVENTS=1`), in one run per store.

Two kinds of append, each one event per save:
- raw: `app.save` of a migration whose note was decided beforehand (what Emmett's appenders do);
- command: `Tracker.execute` (load from the aggregate cache, decide, save), the API's path.

Each writer thread owns its own migrations, so writers never collide; the rate is events stored
over wall time, from the first writer's start to the last one's end.

Usage: python -m bench.group_commit [--store sqlite|postgres|both] [--events N]
       [--writers 1 8 32] [--runs R]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from bench.append_inprocess import CTX, open_migrations
from bench.common import median, save_results, store, table
from domain.application import Tracker
from domain.commands import Command
from domain.migration import Migration

MIGRATIONS = 640


def concurrent_rate(writers: int, work: Callable[[int], int]) -> float:
    """Events/s of `writers` threads, each running work(its index) -> events it stored."""
    stored = [0] * writers
    barrier = threading.Barrier(writers + 1)

    def run(i: int) -> None:
        barrier.wait()
        stored[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(stored) / (time.perf_counter() - started)


def shares(ids: list[UUID], writers: int) -> list[list[UUID]]:
    return [ids[i::writers] for i in range(writers)]


def raw_work(tracker: Tracker, ids: list[UUID], writers: int, events: int) -> Callable[[int], int]:
    """Each writer saves migrations decided beforehand: one new note each, one per save."""
    per_writer = events // writers
    decided: list[list[Migration]] = []
    for mine in shares(ids, writers):
        batch = []
        for mid in mine[:per_writer]:
            migration: Migration = tracker.repository.get(mid)
            note = Command.of("note_added", text="raw")
            migration.execute(note, CTX, tracker.clock(), tracker.offers)
            batch.append(migration)
        decided.append(batch)

    def work(i: int) -> int:
        for migration in decided[i]:
            tracker.save(migration)
        return len(decided[i])

    return work


def command_work(
    tracker: Tracker, ids: list[UUID], writers: int, events: int
) -> Callable[[int], int]:
    """Each writer runs note_added commands on its own migrations, one event per save."""
    per_writer = events // writers
    mine = shares(ids, writers)

    def work(i: int) -> int:
        targets = [mine[i][n % len(mine[i])] for n in range(per_writer)]
        for mid in targets:
            tracker.execute(mid, CTX, Command.of("note_added", text="command"))
        return len(targets)

    return work


def measure(kind: str, events: int, writer_counts: list[int], runs: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {}
    grouping: dict[str, float] = {}
    for _ in range(runs):
        with store(kind) as env:
            setup = Tracker(env=env)
            # A raw save needs a migration of its own (decided beforehand): each is used once
            # per measurement, so raw runs store `len(ids)` events.
            ids = open_migrations(setup, MIGRATIONS)
            setup.close()
            for mode, limit in (("off", "1"), ("on", "1000")):
                # The library reads CSP_TRACKER_<KEY> before <KEY>: set both.
                cap = {
                    "GROUP_COMMIT_MAX_EVENTS": limit,
                    "CSP_TRACKER_GROUP_COMMIT_MAX_EVENTS": limit,
                }
                tracker = Tracker(env={**env, **cap})
                assert tracker.commits.max_events == int(limit)
                command_work(tracker, ids, 1, len(ids))(0)  # warm the aggregate cache
                for writers in writer_counts:
                    before = tracker.commits.stats.transactions, tracker.commits.stats.saves
                    raw = concurrent_rate(writers, raw_work(tracker, ids, writers, len(ids)))
                    rates.setdefault(f"raw {mode} {writers}", []).append(raw)
                    cmd = concurrent_rate(writers, command_work(tracker, ids, writers, events))
                    rates.setdefault(f"command {mode} {writers}", []).append(cmd)
                    tx = tracker.commits.stats.transactions - before[0]
                    saves = tracker.commits.stats.saves - before[1]
                    grouping[f"{mode} {writers}"] = saves / max(tx, 1)
                tracker.close()
    return {"rates": {k: median(v) for k, v in rates.items()}, "runs": rates, "grouping": grouping}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    out = {k: measure(k, args.events, args.writers, args.runs) for k in kinds}
    rows = []
    for kind, result in out.items():
        r = result["rates"]
        for writers in args.writers:
            rows.append(
                [
                    kind,
                    writers,
                    r[f"raw off {writers}"],
                    r[f"raw on {writers}"],
                    r[f"raw on {writers}"] / r["raw off 1"],
                    r[f"command off {writers}"],
                    r[f"command on {writers}"],
                    r[f"command on {writers}"] / r["command off 1"],
                    result["grouping"][f"on {writers}"],
                ]
            )
    table(
        f"Group commit in-process, events/s (median of {args.runs} runs, {args.events} events)",
        [
            "store",
            "writers",
            "raw, off",
            "raw, on",
            "raw on / 1 writer off",
            "command, off",
            "command, on",
            "command on / 1 writer off",
            "saves per tx (on)",
        ],
        rows,
    )
    save_results("group_commit", out)


if __name__ == "__main__":
    main()
