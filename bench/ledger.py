"""The ledger's costs: write-time stream links against the in-process command rate, the Merkle
view against the catch-up rate, and the full verification rate.

Usage: python -m bench.ledger [--store sqlite|postgres|both] [--events N] [--runs R]
       [--size EVENTS]
Writes bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import itertools
import time
from statistics import median
from typing import Any
from uuid import UUID

from bench.append_inprocess import open_migrations
from bench.common import save_results, store, table
from bench.generate import generate
from bench.read_side import read_log_rate
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context
from projections import ReadSide
from projections.heads import Signer
from projections.projector import HeadPolicy

CTX = Context("bench@fabrikam.example", "account_admin")


class UnlinkedTracker(Tracker):
    """The tracker with the library's plain mapper: no stream links (the baseline only)."""

    name = Tracker.name  # the same store tables (the library names them after the app)

    def construct_mapper(self) -> Any:
        return self.factory.mapper(transcoder=self.construct_transcoder())


def command_rate(tracker: Tracker, ids: list[UUID], n: int) -> float:
    targets = list(itertools.islice(itertools.cycle(ids), n))
    note = Command.of("note_added", text="command")
    start = time.perf_counter()
    for mid in targets:
        tracker.execute(mid, CTX, note)
    return n / (time.perf_counter() - start)


def links_cost(kind: str, events: int, runs: int) -> dict[str, Any]:
    linked: list[float] = []
    plain: list[float] = []
    with store(kind) as env:
        setup = Tracker(env=env)
        ids = open_migrations(setup, max(50, events // 10))
        setup.close()
        for _ in range(runs):  # alternate, so drift affects both alike
            for cls, out in ((UnlinkedTracker, plain), (Tracker, linked)):
                tracker = cls(env=env)
                out.append(command_rate(tracker, ids, events))
                tracker.close()
    return {
        "command_plain": median(plain),
        "command_linked": median(linked),
        "ratio": median(linked) / median(plain),
        "runs": {"plain": plain, "linked": linked},
    }


def ledger_cost(kind: str, size: int, tmp_key: str) -> dict[str, Any]:
    with store(kind) as env:
        tracker = Tracker(env=env)
        generate(tracker, size)
        events = tracker.recorder.max_notification_id()
        assert events is not None  # generate() stored some
        read = read_log_rate(tracker)
        side = ReadSide(tracker, env, heads=HeadPolicy(Signer.from_file(tmp_key)))
        try:
            everything = side.rebuild()["events_per_second"]
            ledger_only = side.rebuild("ledger")["events_per_second"]
            audit_only = side.rebuild("audit")["events_per_second"]
            side.issue_head(force=True)
            started = time.perf_counter()
            result = side.verify(Signer.from_file(tmp_key).public_key)
            verify_seconds = time.perf_counter() - started
        finally:
            side.close()
            tracker.close()
    assert result["ok"], result["failures"]
    return {
        "events": events,
        "read_log": read,
        "rebuild_all_with_ledger": everything,
        "ratio_to_read": everything / read,
        "ledger_only": ledger_only,
        "audit_only": audit_only,
        "verify_events_per_second": events / verify_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=2000, help="commands per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=20_000, help="store size for the ledger")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    import tempfile
    from pathlib import Path

    key = str(Path(tempfile.mkdtemp()) / "bench.key")
    Signer.generate(key)
    results: dict[str, Any] = {}
    for kind in kinds:
        results[kind] = {
            "links": links_cost(kind, args.events, args.runs),
            "ledger": ledger_cost(kind, args.size, key),
        }
    rows = [
        [
            kind,
            f"{r['links']['command_plain']:,.0f}",
            f"{r['links']['command_linked']:,.0f}",
            f"{r['links']['ratio']:.2f}",
        ]
        for kind, r in results.items()
    ]
    table("Stream links (commands/s)", ["store", "no links", "linked", "ratio"], rows)
    rows = [
        [
            kind,
            f"{r['ledger']['events']:,}",
            f"{r['ledger']['read_log']:,.0f}",
            f"{r['ledger']['rebuild_all_with_ledger']:,.0f}",
            f"{r['ledger']['ratio_to_read']:.2f}",
            f"{r['ledger']['ledger_only']:,.0f}",
            f"{r['ledger']['audit_only']:,.0f}",
            f"{r['ledger']['verify_events_per_second']:,.0f}",
        ]
        for kind, r in results.items()
    ]
    header = ["store", "events", "read log", "rebuild all", "ratio", "ledger only", "audit only",
              "verify"]  # fmt: skip
    table("Ledger (events/s)", header, rows)
    save_results("ledger", results)


if __name__ == "__main__":
    main()
