"""Append baselines in-process: the raw library save, and the tracker's command path
(load + decide + save), with and without the library's aggregate cache.

Usage: python -m bench.append_inprocess [--store sqlite|postgres] [--events N] [--runs R]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import cast
from uuid import UUID

from bench.common import median, rate, save_results, store, table
from bench.generate import generate
from domain.access import issue_key
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context
from domain.migration import Migration

CTX = Context("bench@fabrikam", "account_admin")


def open_migrations(tracker: Tracker, count: int, partner_id: str = "fabrikam") -> list[UUID]:
    """Ids of `count` open migrations of one partner (the generator leaves some open)."""
    generate(tracker, count * 40)
    ids = [
        cast(UUID, n.originator_id)  # the recorder converts ids back to the tracker's UUIDs
        for n in tracker.recorder.select_notifications(
            start=None, limit=10**7, topics=["csp_tracker.migration:relationship_requested"]
        )
    ]
    open_ids = []
    for mid in ids:
        m = tracker.get(mid)
        if not m.is_closed and m.state.partner_id == partner_id:
            open_ids.append(mid)
    return open_ids[:count]


def load_targets(tracker: Tracker, count: int, directory: Path) -> tuple[list[UUID], str, Path]:
    """What bench/events.lua posts to: `count` open migrations of one partner, a key of its
    account admin, and a file of the migrations' ids, one a line, in `directory`."""
    migrations = open_migrations(tracker, count)
    token = issue_key(tracker, "bench", "account_admin", "fabrikam").token
    ids = directory / "ids.txt"
    ids.write_text("\n".join(str(m) for m in migrations) + "\n")
    return migrations, token, ids


def raw_save_rate(tracker: Tracker, ids: list, n: int) -> float:
    """app.save of one aggregate with one new event per call (decisions made beforehand)."""
    batch = []
    for mid in itertools.islice(itertools.cycle(ids), n):
        m: Migration = tracker.repository.get(mid)
        m.execute(Command.of("note_added", text="raw"), CTX, tracker.clock(), tracker.offers)
        batch.append(m)
        if len(batch) == len(ids):
            break

    def run():
        for m in batch:
            tracker.save(m)

    return rate(len(batch), run)


def command_rate(tracker: Tracker, ids: list, n: int) -> float:
    targets = list(itertools.islice(itertools.cycle(ids), n))

    def run():
        for mid in targets:
            tracker.execute(mid, CTX, Command.of("note_added", text="command"))

    return rate(n, run)


def measure(kind: str, events: int, runs: int) -> dict:
    results: dict[str, list[float]] = {"raw_save": [], "command": [], "command_cached": []}
    for _ in range(runs):
        with store(kind) as env:
            # The tracker caches aggregates by default; this one does not, for comparison.
            tracker = Tracker(env={**env, "AGGREGATE_CACHE_MAXSIZE": ""})
            ids = open_migrations(tracker, max(50, events // 10))
            results["raw_save"].append(raw_save_rate(tracker, ids, events))
            results["command"].append(command_rate(tracker, ids, events))
            tracker.close()
            cached = Tracker(env=env)  # the default: AGGREGATE_CACHE_MAXSIZE=10000
            results["command_cached"].append(command_rate(cached, ids, events))
            cached.close()
    return {k: median(v) for k, v in results.items()} | {"runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    out = {k: measure(k, args.events, args.runs) for k in kinds}
    rows = [
        [
            k,
            v["raw_save"],
            v["command"],
            v["command_cached"],
            v["command"] / v["raw_save"],
            v["command_cached"] / v["raw_save"],
        ]
        for k, v in out.items()
    ]
    table(
        f"In-process append, events/s (median of {args.runs} runs, {args.events} events)",
        ["store", "raw app.save", "command", "command + cache", "command/raw", "cached/raw"],
        rows,
    )
    save_results("append_inprocess", out)


if __name__ == "__main__":
    main()
