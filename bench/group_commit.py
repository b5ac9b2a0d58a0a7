"""Group commit in-process: concurrent writers of different migrations, against one writer,
with group commit on (the default) and off (`GROUP_COMMIT_MAX_EVENTS=1`), in one run per store.

Two kinds of append, each one event per save:
- raw: `app.save` of a migration whose note was decided beforehand (what Emmett's appenders do);
- command: `Tracker.execute` (load from the aggregate cache, decide, save), the API's path.

Each writer thread owns its own migrations, so writers never collide; the rate is events stored
over wall time, from the first writer's start to the last one's end (raw: summed over rounds of
one save per migration, about N events in all).

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


def raw_rate(tracker: Tracker, ids: list[UUID], writers: int, events: int) -> float:
    """Events/s of raw saves by `writers` threads, over rounds of one save per migration until
    about `events` are stored (each round's notes decided before it, untimed): a round of 640
    saves lasts ~0.2 s on PostgreSQL at 8 writers, too short to measure alone."""
    stored, seconds = 0, 0.0
    for _ in range(max(1, round(events / len(ids)))):
        work = raw_work(tracker, ids, writers, len(ids))
        rate = concurrent_rate(writers, work)
        made = len(ids) // writers * writers
        stored, seconds = stored + made, seconds + made / rate
    return stored / seconds


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


# Each mode is a Tracker's settings over the store's: `off` commits every save alone (the
# old path), `on` is the default, `no linger` is group commit without GroupCommit._gather.
MODES = {
    "off": {"GROUP_COMMIT_MAX_EVENTS": "1"},
    "no linger": {"GROUP_COMMIT_LINGER_MS": "0"},
    "on": {},
}


def measure(kind: str, events: int, writer_counts: list[int], runs: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {}
    grouping: dict[str, list[float]] = {}
    for _ in range(runs):
        with store(kind) as env:
            setup = Tracker(env=env)
            # A raw save needs a migration of its own (decided beforehand): each is used once
            # per round of raw saves. Each mode has migrations of its own, so that each starts
            # from the same versions: the modes measured later would otherwise meet more of
            # the snapshots taken every 100 events (a save that takes one costs a read and a
            # transaction more), as their migrations' versions cross 100 together.
            every = open_migrations(setup, MIGRATIONS * len(MODES))
            setup.close()
            for m, (mode, settings) in enumerate(MODES.items()):
                ids = every[m :: len(MODES)]
                # The library reads CSP_TRACKER_<KEY> before <KEY>: set both.
                extra = {k: v for key, v in settings.items() for k in (key, f"CSP_TRACKER_{key}")}
                tracker = Tracker(env={**env, **extra})
                command_work(tracker, ids, 1, len(ids))(0)  # warm the aggregate cache
                for writers in writer_counts:
                    before = tracker.commits.stats.transactions, tracker.commits.stats.saves
                    raw = raw_rate(tracker, ids, writers, events)
                    rates.setdefault(f"raw {mode} {writers}", []).append(raw)
                    cmd = concurrent_rate(writers, command_work(tracker, ids, writers, events))
                    rates.setdefault(f"command {mode} {writers}", []).append(cmd)
                    tx = tracker.commits.stats.transactions - before[0]
                    saves = tracker.commits.stats.saves - before[1]
                    grouping.setdefault(f"{mode} {writers}", []).append(saves / max(tx, 1))
                tracker.close()
    # Ratios against one writer with group commit off, run by run (the same store and minute).
    ratios = {
        f"{path} {mode} {w}": [
            a / b for a, b in zip(rates[f"{path} {mode} {w}"], rates[f"{path} off 1"], strict=True)
        ]
        for path in ("raw", "command")
        for mode in MODES
        for w in writer_counts
    }
    return {
        "rates": {k: median(v) for k, v in rates.items()},
        "ratios": {k: median(v) for k, v in ratios.items()},
        "runs": rates,
        "run_ratios": ratios,
        "grouping": {k: median(v) for k, v in grouping.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if 1 not in args.writers:
        parser.error("--writers must include 1: the ratios are against one writer")
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    out = {k: measure(k, args.events, args.writers, args.runs) for k in kinds}
    rows = []
    for kind, result in out.items():
        r, q, g = result["rates"], result["ratios"], result["grouping"]
        for writers in args.writers:
            rows.append(
                [
                    kind,
                    writers,
                    r[f"raw off {writers}"],
                    r[f"raw no linger {writers}"],
                    r[f"raw on {writers}"],
                    q[f"raw no linger {writers}"],
                    q[f"raw on {writers}"],
                    r[f"command off {writers}"],
                    r[f"command on {writers}"],
                    q[f"command on {writers}"],
                    f"{g[f'no linger {writers}']:.1f} / {g[f'on {writers}']:.1f}",
                ]
            )
    table(
        f"Group commit in-process, events/s (median of {args.runs} runs, about {args.events} "
        "events each; ratios: median of each run's own)",
        [
            "store",
            "writers",
            "raw, off",
            "raw, on, no linger",
            "raw, on",
            "no linger / 1 writer off",
            "on / 1 writer off",
            "command, off",
            "command, on",
            "command on / 1 writer off",
            "saves per tx (no linger / on)",
        ],
        rows,
    )
    save_results("group_commit", out)


if __name__ == "__main__":
    main()
