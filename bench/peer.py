"""Against a peer: Emmett 0.42's PostgreSQL event store (Node) and ours, on the same PostgreSQL
server with the same durability settings, with the same events, in one run.

Each run, on a fresh store of each (ours: a schema; Emmett's: a database of its own, since its
schema DDL assumes one store per database):
- ours: generate a store (bench.append_inprocess.open_migrations), read it all back (the
  notification log in pages of 1000, decoded: bench.read_side's baseline), then append note_added
  through the raw `app.save` and the command path with 1 and 8 writer threads (bench.group_commit,
  group commit on as by default);
- Emmett (bench/peer/emmett.mjs): the same stored events appended untimed, each stream's events
  in one append; read all from the start in batches of 1000 (readMessagesBatch, what its
  consumers pull with); then 1 and 8 concurrent appenders, one event per append, each to a
  different stream at its expected version, the event being one of our stored note_added
  (topic as type, stored JSON as data).
The two sides take turns going first in each pair of measurements. Then a larger store
(`--read-events`, generated once) is read by each side `--runs` times, taking turns. Medians of
the runs; ratios are taken within a run, then their median.

Emmett's catch-up can skip events that were appended concurrently: readMessagesBatch orders by
transaction id, then global position, and resumes after the last global position it returned;
concurrent transactions take global positions out of transaction-id order, so an event whose
position is below that of a batch's last row but which sorts after it is never read. The seed is
therefore appended one stream at a time (the store then reads whole), and after the concurrent
appends Emmett reads the store once more and reports what it read against the rows stored.

Needs `npm ci --prefix bench/peer` once. Emmett's SQLite store is not measured: the only 0.42
release of @event-driven-io/emmett-sqlite (0.42.4) wants @event-driven-io/emmett 0.42.4, which
is not published (0.42.0 is the only 0.42 release), so npm refuses to install it.

Usage: python -m bench.peer [--events N] [--runs R]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from bench.append_inprocess import CTX, open_migrations
from bench.common import PG, median, save_results, store, table
from bench.generate import generate
from bench.group_commit import MIGRATIONS, command_work, concurrent_rate, raw_work
from bench.read_side import read_log_rate
from domain.application import Tracker
from domain.commands import Command
from domain.migration import Migration

NODE_DIR = Path(__file__).parent / "peer"
WRITERS = (1, 8)
TARGET = 3.5  # issue 13, goal 3: 8 writers reach this many times the one-client rate


@contextlib.contextmanager
def emmett_database() -> Iterator[str]:
    """A fresh database on the same server for Emmett's store; its connection string."""
    name = f"bench_peer_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        auth = quote(PG["user"]) + (f":{quote(PG['password'])}" if PG["password"] else "")
        yield f"postgresql://{auth}@{PG['host']}:{PG['port']}/{name}"
    finally:
        with psycopg.connect(**PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def durability(tracker: Tracker) -> dict[str, str]:
    """synchronous_commit and fsync as our recorder's own connections see them."""
    with tracker.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        out = {}
        for name in ("synchronous_commit", "fsync"):
            cursor.execute(f"SHOW {name}")
            out[name] = next(iter(cursor.fetchone().values()))
        return out


def export(tracker: Tracker, path: Path) -> int:
    """Our stored events as Emmett events, one JSON line each: stream, type (topic), data."""
    count, start = 0, None
    with path.open("w") as out:
        while page := tracker.recorder.select_notifications(start, 1000, inclusive_of_start=False):
            for n in page:
                line = {"stream": f"migration-{n.originator_id}", "type": n.topic}
                out.write(json.dumps({**line, "data": json.loads(n.state)}) + "\n")
            count += len(page)
            start = page[-1].id
    return count


def stored_note(tracker: Tracker, mid: uuid.UUID) -> dict[str, Any]:
    """A note_added as the raw path stores it (decided, encoded, not saved): Emmett appends it."""
    migration: Migration = tracker.repository.get(mid)
    migration.execute(Command.of("note_added", text="raw"), CTX, tracker.clock(), tracker.offers)
    stored = tracker.mapper.to_stored_event(migration.collect_events()[0])
    return {"type": stored.topic, "data": json.loads(stored.state), "bytes": len(stored.state)}


def raw_rate(tracker: Tracker, ids: list[uuid.UUID], writers: int, events: int) -> float:
    """Raw saves of `writers` threads, rounds over all open migrations until `events` are stored
    (a raw save needs a migration decided beforehand, each usable once per round)."""
    stored, seconds = 0, 0.0
    per_round = len(ids) // writers * writers
    while stored < events:
        rate = concurrent_rate(writers, raw_work(tracker, ids, writers, len(ids)))
        stored += per_round
        seconds += per_round / rate
    return stored / seconds


class Emmett:
    """bench/peer/emmett.mjs in its own Node process: one JSON command a line, one answer."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            ["node", str(NODE_DIR / "emmett.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.durability = self.call("open", connectionString=url, batchSize=1000)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"emmett.mjs ended (exit {self.process.wait()}) during {op}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.process.stdin
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write(json.dumps({"op": "close"}) + "\n")
            self.process.stdin.close()
        self.process.wait(timeout=60)


def one_run(events: int, emmett_first: bool) -> dict[str, Any]:
    """One run; the sides take turns in each pair of measurements, `emmett_first` or not."""
    out: dict[str, Any] = {"emmett_first": emmett_first, "ours": {}, "emmett": {}}
    with (
        store("postgres") as env,
        emmett_database() as url,
        tempfile.TemporaryDirectory(prefix="csp-peer-") as tmp,
    ):
        tracker = Tracker(env=env)  # group commit on: the default
        ids = open_migrations(tracker, MIGRATIONS)
        seed = Path(tmp) / "events.jsonl"
        out["store_events"] = export(tracker, seed)
        out["ours"]["durability"] = durability(tracker)
        note = stored_note(tracker, ids[0])
        out["event_bytes"] = note.pop("bytes")
        peer = Emmett(url)
        try:
            out["emmett"]["durability"] = peer.durability
            out["emmett"]["streams"] = peer.call("seed", path=str(seed))["streams"]

            def pair(ours: Callable[[], Any], theirs: Callable[[], Any]) -> tuple[Any, Any]:
                if emmett_first:
                    t = theirs()
                    return ours(), t
                return ours(), theirs()

            out["ours"]["read"], out["emmett"]["read"] = pair(
                lambda: read_log_rate(tracker), lambda: peer.call("read")
            )
            command_work(tracker, ids, 1, len(ids))(0)  # warm the aggregate cache
            for w in WRITERS:
                out["ours"][f"raw {w}"], out["emmett"][f"append {w}"] = pair(
                    partial(raw_rate, tracker, ids, w, events),
                    partial(peer.call, "append", appenders=w, events=events, event=note),
                )
                work = command_work(tracker, ids, w, events)
                out["ours"][f"command {w}"] = concurrent_rate(w, work)
            # Read everything again now that concurrent appenders have written.
            out["emmett"]["reread"] = peer.call("read")
        finally:
            peer.close()
            tracker.close()
    read = out["emmett"]["read"]
    if read["events"] != out["store_events"]:
        raise SystemExit(f"Emmett read {read['events']} of {out['store_events']} events")
    if out["emmett"]["durability"] != out["ours"]["durability"]:
        raise SystemExit(f"durability differs: {out['emmett']['durability']}, ours {out['ours']}")
    return out


def large_reads(size: int, runs: int) -> dict[str, Any]:
    """Catch-up reads of a larger store (generated once, read `runs` times by each side, taking
    turns): Emmett's batches each sort what is left of its table, so its rate falls with size."""
    out: dict[str, Any] = {"ours": [], "emmett": []}
    with (
        store("postgres") as env,
        emmett_database() as url,
        tempfile.TemporaryDirectory(prefix="csp-peer-") as tmp,
    ):
        tracker = Tracker(env=env)
        generate(tracker, size)
        seed = Path(tmp) / "events.jsonl"
        out["store_events"] = export(tracker, seed)
        peer = Emmett(url)
        try:
            peer.call("seed", path=str(seed))
            for r in range(runs):
                if r % 2:
                    out["emmett"].append(peer.call("read"))
                out["ours"].append(read_log_rate(tracker))
                if not r % 2:
                    out["emmett"].append(peer.call("read"))
        finally:
            peer.close()
            tracker.close()
    if any(read["events"] != out["store_events"] for read in out["emmett"]):
        raise SystemExit(f"Emmett read {out['emmett']} of {out['store_events']} events")
    return out


def figures(run: dict[str, Any]) -> dict[str, float]:
    """One run's rates (events/s) and the ratios between them."""
    ours, theirs = run["ours"], run["emmett"]
    out = {"ours read": ours["read"], "emmett read": theirs["read"]["rate"]}
    for w in WRITERS:
        out[f"emmett {w}"] = theirs[f"append {w}"]["rate"]
        out[f"raw {w}"] = ours[f"raw {w}"]
        out[f"command {w}"] = ours[f"command {w}"]
    for w in WRITERS:
        for side in ("emmett", "raw", "command"):
            out[f"{side} {w} / {side} 1"] = out[f"{side} {w}"] / out[f"{side} 1"]
        out[f"raw {w} / emmett {w}"] = out[f"raw {w}"] / out[f"emmett {w}"]
    out["ours read / emmett read"] = out["ours read"] / out["emmett read"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="appends per measurement")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--read-events", type=int, default=100_000, help="size of the larger store read (0: none)"
    )
    args = parser.parse_args()
    if not (NODE_DIR / "node_modules").is_dir():
        raise SystemExit("run `npm ci --prefix bench/peer` first")
    runs = [one_run(args.events, emmett_first=r % 2 == 1) for r in range(args.runs)]
    large = large_reads(args.read_events, args.runs) if args.read_events else None

    # Ratios are taken within each run, then their median: the machine's load moves between runs.
    per_run = [figures(r) for r in runs]
    f = {key: median([p[key] for p in per_run]) for key in per_run[0]}
    rows: list[list[Any]] = [
        [
            f"append, {w} writer{'s' if w > 1 else ''}",
            f[f"emmett {w}"],
            f[f"emmett {w} / emmett 1"],
            f[f"raw {w}"],
            f[f"raw {w} / raw 1"],
            f[f"raw {w} / emmett {w}"],
            f[f"command {w}"],
            f[f"command {w} / command 1"],
        ]
        for w in WRITERS
    ]
    read = [f"catch-up read, {runs[0]['store_events']:,} events", f["emmett read"], ""]
    read += [f["ours read"], ""]
    rows.append([*read, f["ours read / emmett read"], "", ""])
    if large:
        ours_l = median(large["ours"])
        theirs_l = median([read["rate"] for read in large["emmett"]])
        f["large ours read"], f["large emmett read"] = ours_l, theirs_l
        f["large ours read / emmett read"] = median(
            [o / t["rate"] for o, t in zip(large["ours"], large["emmett"], strict=True)]
        )
        big = [f"catch-up read, {large['store_events']:,} events", theirs_l, "", ours_l, ""]
        rows.append([*big, f["large ours read / emmett read"], "", ""])
    table(
        f"Against Emmett 0.42 on PostgreSQL, events/s (median of {args.runs} runs; "
        f"{args.events} appends per measurement)",
        [
            "what",
            "Emmett",
            "/ its 1 writer",
            "ours, raw app.save",
            "/ its 1 writer",
            "raw / Emmett",
            "ours, command",
            "/ its 1 writer",
        ],
        rows,
    )
    met = "met" if f["raw 8 / raw 1"] >= TARGET else "NOT met"
    print(f"\nours raw, 8 writers / 1 writer: {f['raw 8 / raw 1']:.2f} (≥ {TARGET}: {met})")
    reread = [
        f"{r['emmett']['reread']['events']} of {r['emmett']['reread']['stored']}" for r in runs
    ]
    print(f"Emmett reading all after its concurrent appends: {', '.join(reread)}")
    print(
        f"event: {runs[0]['event_bytes']} bytes stored; durability {runs[0]['ours']['durability']}"
    )
    save_results(
        "peer",
        {
            "events": args.events,
            "medians": f,
            "runs": runs,
            "large_reads": large,
            "emmett_sqlite": "not measured: emmett-sqlite 0.42.4 needs emmett 0.42.4, unpublished",
        },
    )


if __name__ == "__main__":
    main()
