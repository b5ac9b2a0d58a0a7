"""HTTP append: single-event POST /v1/migrations/{id}/events through a real uvicorn server on
loopback (1 worker, the projector in-process, as `csp-tracker serve`), against the in-process
command rate measured in the same run on the same store.

The load is `wrk -t1` with bench/events.lua (a C client: it leaves the server its core),
posting `note_added` to ~100 open migrations of one partner, picked at random, without
If-Match. Each run measures, in turn: the in-process command rate (bench.append_inprocess's
"command with the aggregate cache", no server running), then one segment per variant, each
with a server of its own started for it:
- `full`: no Prefer header, the whole state rendered in each answer (the default);
- `minimal`: `Prefer: return=minimal` (RFC 7240), the stored events' ids only;
- `alone` (with `--alone`): as `full`, with group commit off
  (`CSP_TRACKER_GROUP_COMMIT_MAX_EVENTS=1`: each request's events in a transaction of their own);
- `before` (with `--before PATH`): the code of another checkout, such as the commit before a
  change, without Prefer, on the same store.
Before each segment a short Python check posts one event and checks the answer (status,
headers, body shape), and wrk warms the server up for 2 s. Rates are 201s over wrk's own
duration; p50 and p99 are wrk's latency distribution. Server CPU is the uvicorn process's (and
its children's) utime + stime from /proc, from the start of the segment until the store is
quiet and the views have caught up, per event landed: projecting the events is counted. Its
counterpart is this process's CPU time per in-process command; their ratio (in-process CPU per
command over server CPU per request) is the rate ratio if each had a core to itself and never
waited for the disk, which a shared machine's rates cannot show.

Usage: python -m bench.append_http [--store sqlite|postgres|both] [--seconds S] [--runs R]
       [--connections C] [--migrations M] [--before PATH] [--alone]
Needs wrk (Debian: apt-get install wrk). Figures: docs/performance.md, section 1.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from bench.append_inprocess import command_rate, load_targets
from bench.common import median, save_results, store, table
from bench.server import ROOT, measure, projecting, serving, wrk_arguments
from domain.application import Tracker

PREFER = {"full": "", "minimal": "return=minimal", "alone": "", "before": "", "scaled": ""}
# The server's own settings per variant: `alone` commits every save in its own transaction;
# `scaled` runs no projector in the API processes (a `csp-tracker project` process does).
EXTRA_ENV = {
    "alone": {"CSP_TRACKER_GROUP_COMMIT_MAX_EVENTS": "1"},
    "scaled": {"CSP_TRACKER_RUN_PROJECTIONS": "false"},
}


def check(url: str, token: str, migration_id: UUID, variant: str) -> None:
    """One append, its answer checked: a wrong answer stops the benchmark."""
    headers = {"Authorization": f"Bearer {token}"}
    if PREFER[variant]:
        headers["Prefer"] = PREFER[variant]
    r = httpx.post(
        f"{url}/v1/migrations/{migration_id}/events",
        json={"type": "note_added", "text": "check"},
        headers=headers,
        timeout=30,
    )
    body = r.json()
    problems = []
    if r.status_code != 201:
        problems.append(f"status {r.status_code}")
    elif body["id"] != str(migration_id) or r.headers.get("ETag") != str(body["version"]):
        problems.append("id or ETag")
    elif [e["type"] for e in body["events"]] != ["note_added"]:
        problems.append("events")
    elif body["events"][0]["version"] != body["version"]:
        problems.append("event version")
    elif variant == "minimal" and (
        "state" in body
        or r.headers.get("Preference-Applied") != "return=minimal"
        or r.headers.get("Location") != f"/v1/migrations/{migration_id}"
    ):
        problems.append("minimal answer")
    elif variant != "minimal" and body["state"]["version"] != body["version"]:
        problems.append("state")
    if problems:
        raise SystemExit(f"{variant}: wrong answer ({', '.join(problems)}): {r.text[:500]}")


def one_store(kind: str, args: Any) -> list[dict]:
    variants = ["full", "minimal"] + (["alone"] if args.alone else [])
    variants += ["before"] if args.before else []
    variants += ["scaled"] if args.scaled else []
    out: list[dict] = []
    with store(kind) as env, tempfile.TemporaryDirectory(prefix="csp-append-") as tmp:
        tracker = Tracker(env=env)  # the default: the aggregate cache on
        try:
            migrations, token, ids = load_targets(tracker, args.migrations, Path(tmp))
            command_rate(tracker, migrations, 500)  # warm-up: the cache, the first snapshots
            for run in range(args.runs):
                # One untimed command per migration first: the servers of the last run stored
                # events this process's aggregate cache has not seen, and the first command of
                # each migration would fast-forward through them (about 160 events each) inside
                # the timed loop, slowing the baseline of every run but the first.
                command_rate(tracker, migrations, len(migrations))
                cpu = time.process_time()  # this process runs nothing else meanwhile
                command = command_rate(tracker, migrations, args.events)
                command_cpu_ms = 1000 * (time.process_time() - cpu) / args.events
                for variant in variants:
                    root = Path(args.before) if variant == "before" else ROOT
                    extra = EXTRA_ENV.get(variant)
                    workers = args.scaled if variant == "scaled" else 1
                    with contextlib.ExitStack() as stack:
                        url, proc = stack.enter_context(
                            serving(env, workers=workers, root=root, extra_env=extra)
                        )
                        pids = [proc.pid]
                        if variant == "scaled":
                            pids.append(stack.enter_context(projecting(env, root)).pid)
                        check(url, token, migrations[0], variant)
                        script = [str(ids), token, "single", "1", PREFER[variant]]
                        measure(url, pids, tracker, token, script, 2, args.connections)
                        result = measure(
                            url, pids, tracker, token, script, args.seconds, args.connections
                        )
                    rate = result["statuses"].get("201", 0) / result["seconds"]
                    cpu_ms = 1000 * result["server_cpu_seconds"] / max(result["landed"], 1)
                    result |= {
                        "run": run,
                        "variant": variant,
                        "command": command,
                        "command_cpu_ms": command_cpu_ms,
                        "events_per_second": rate,
                        "ratio": rate / command,
                        "cpu_ms_per_request": cpu_ms,
                        # The rate ratio if both had a core to themselves and never waited.
                        "cpu_ratio": command_cpu_ms / cpu_ms,
                    }
                    out.append(result)
                    print(
                        f"{kind} run {run} {variant}: {rate:,.0f}/s HTTP, {command:,.0f}/s "
                        f"in-process ({rate / command:.2f}), p50 {result['p50_ms']:.1f} ms, "
                        f"p99 {result['p99_ms']:.1f} ms, {cpu_ms:.2f} ms CPU/request against "
                        f"{command_cpu_ms:.2f} in-process ({result['cpu_ratio']:.2f}), "
                        f"statuses {result['statuses']}, errors {result['errors']}",
                        flush=True,
                    )
        finally:
            tracker.close()
    return out


def main() -> None:
    parser = wrk_arguments(__doc__)
    parser.add_argument("--events", type=int, default=2000, help="in-process commands per run")
    parser.add_argument("--before", help="a checkout of the code to compare with (its root)")
    parser.add_argument("--alone", action="store_true", help="also measure group commit off")
    parser.add_argument(
        "--scaled",
        type=int,
        metavar="N",
        help="also measure N uvicorn workers without projector, and a `project` process",
    )
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results: dict[str, list[dict]] = {}
    rows = []
    for kind in kinds:
        results[kind] = one_store(kind, args)
        for variant in dict.fromkeys(r["variant"] for r in results[kind]):
            runs = [r for r in results[kind] if r["variant"] == variant]
            rows.append(
                [
                    kind,
                    variant,
                    median([r["command"] for r in runs]),
                    median([r["events_per_second"] for r in runs]),
                    median([r["ratio"] for r in runs]),
                    median([r["p50_ms"] for r in runs]),
                    median([r["p99_ms"] for r in runs]),
                    median([r["command_cpu_ms"] for r in runs]),
                    median([r["cpu_ms_per_request"] for r in runs]),
                    median([r["cpu_ratio"] for r in runs]),
                ]
            )
    table(
        f"Single-event HTTP append vs in-process command, events/s (median of {args.runs} runs "
        f"of {args.seconds:g} s, wrk, {args.connections} connections, 1 uvicorn worker)",
        [
            "store",
            "variant",
            "in-process command",
            "HTTP",
            "HTTP/command",
            "p50 ms",
            "p99 ms",
            "in-process CPU ms/command",
            "server CPU ms/request",
            "CPU ratio",
        ],
        rows,
    )
    save_results("append_http", {"args": vars(args), "results": results, "rows": rows})


if __name__ == "__main__":
    main()
