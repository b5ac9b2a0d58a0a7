"""Projector failover on PostgreSQL: several `csp-tracker project` processes, one active.

Two API processes (projections off) take a write burst while two projector processes share the
schema. The active projector (the session holding the schema's advisory lock) gets SIGKILL in
the middle of the burst; the standby must take over within seconds, and the views must end as
a fresh projection of the same store makes them: nothing lost, nothing applied twice, the same
ledger root, and every signed head (some by each projector) a root of the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from bench.server import free_port, settings_env
from domain.application import Tracker
from projections import ReadSide
from projections.election import PostgresTarget, postgres_target, projector_holder
from projections.heads import Signer
from projections.ledger import CompactRange, leaf_of
from projections.projector import ReadModelProjection
from projections.rows import MIGRATION_TOPIC_PREFIX
from tests.conftest import PG
from tests.faults.conftest import Keys, client, new_migration, note, wait_caught_up

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
TAKEOVER_LIMIT = 5.0  # seconds from the SIGKILL to the standby holding the lock
MIGRATIONS = 4
ACKS_BEFORE_KILL = 40
ACKS_AFTER_KILL = 40
BURST_TIMEOUT = 30.0
# Imports first (they take a variable second or so), then the command at a given instant:
# `python -m api.cli project` twice in a row would rarely start both at once.
AT_ONCE = (
    "import sys, time\n"
    "import eventsourcing.postgres, projections\n"
    "from api.cli import main\n"
    "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
    "sys.exit(main(sys.argv[2:]))\n"
)

T = TypeVar("T")


@dataclass
class Proc:
    name: str  # its PGAPPNAME: how pg_stat_activity (and so the lock's holder) names it
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def process_env(store_env: dict[str, str], key: Path, name: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **settings_env(store_env),
        "CSP_TRACKER_LEDGER_KEY": str(key),
        "PGAPPNAME": name,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@contextmanager
def spawned(args: list[str], env: dict[str, str], log: Path) -> Iterator[Proc]:
    """A `python ...` subprocess, its output in `log`; stopped (SIGTERM, then SIGKILL) at exit."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Proc(env["PGAPPNAME"], process, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextmanager
def api_server(store_env: dict[str, str], key: Path, log: Path) -> Iterator[str]:
    """`csp-tracker serve` with projections off; its URL once /healthz answers."""
    port = free_port()
    env = process_env(
        store_env, key, f"api-{uuid.uuid4().hex[:8]}", CSP_TRACKER_RUN_PROJECTIONS="false"
    )
    args = ["-m", "api.cli", "serve", "--port", str(port), "--no-demo"]
    with spawned(args, env, log) as proc:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.process.poll() is None, f"serve exited:\n{proc.output()}"
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, START_TIMEOUT, "the API server to start")
        yield url


def wait_for(probe: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def views_target(store_env: dict[str, str]) -> PostgresTarget:
    target = postgres_target(store_env, ReadModelProjection.name)
    assert target is not None
    return target


def holder_name(target: PostgresTarget) -> str | None:
    holder = projector_holder(target)
    return None if holder is None else holder["application_name"]


def tracked_position(store_env: dict[str, str]) -> int:
    with psycopg.connect(**PG, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            f'SELECT notification_id FROM "{store_env["POSTGRES_SCHEMA"]}".'
            '"csp_tracker_views_tracking" WHERE application_name = %s',
            (Tracker.name,),
        ).fetchone()
    return 0 if row is None else row[0]


def alive(*procs: Proc) -> None:
    """Fails at once (not at a wait's deadline) when a process has exited."""
    for p in procs:
        assert p.process.poll() is None, f"{p.name} exited:\n{p.output()}"


def no_errors(proc: Proc) -> None:
    output = proc.output()
    assert "Traceback" not in output and " ERROR " not in output, output


@pytest.mark.slow
class TestTheActiveProjectorIsKilledDuringAWriteBurst:
    """Given two API processes, two projector processes and writers on both APIs."""

    def test_the_standby_takes_over_and_the_views_equal_a_fresh_projection(
        self, postgres_only: dict[str, str], keys: Keys, tmp_path: Path
    ) -> None:
        store_env = postgres_only
        key = tmp_path / "ledger.key"
        signer = Signer.generate(key)
        target = views_target(store_env)
        with ExitStack() as stack:
            projectors = [
                stack.enter_context(
                    spawned(
                        ["-m", "api.cli", "project", "--batch-size", "20"],
                        # A head every 10 events: both projectors sign some.
                        process_env(
                            store_env,
                            key,
                            f"projector-{x}-{uuid.uuid4().hex[:8]}",
                            CSP_TRACKER_LEDGER_HEAD_EVERY="10",
                        ),
                        tmp_path / f"projector-{x}.log",
                    )
                )
                for x in "ab"
            ]
            urls = [
                stack.enter_context(api_server(store_env, key, tmp_path / f"api-{i}.log"))
                for i in range(2)
            ]
            https = [stack.enter_context(client(url, keys)) for url in urls]

            # Exactly one is active; the other says it stands by.
            active_name = wait_for(
                lambda: alive(*projectors) or holder_name(target), START_TIMEOUT, "a projector"
            )
            (active,) = [p for p in projectors if p.name == active_name]
            (standby,) = [p for p in projectors if p is not active]
            wait_for(
                lambda: alive(*projectors) or "standing by" in standby.output(),
                START_TIMEOUT,
                "the standby",
            )
            for http in https:
                assert http.get("/readyz").json()["projector"] == "off"

            migrations = [new_migration(https[i % 2])["id"] for i in range(MIGRATIONS)]
            wait_caught_up(https[0])
            before_burst = tracked_position(store_env)

            acked: list[tuple[str, int]] = []
            failed: list[Any] = []
            lock = threading.Lock()
            done = threading.Event()
            deadline = time.monotonic() + BURST_TIMEOUT

            def writer(i: int) -> None:
                mid, n = migrations[i], 0
                while not done.is_set() and time.monotonic() < deadline:
                    # Each writer alternates between the two API processes.
                    r = https[n % 2].post(f"/v1/migrations/{mid}/events", json=note(f"{i}-{n}"))
                    with lock:
                        if r.status_code == 201:
                            acked.append((mid, r.json()["version"]))
                        else:
                            failed.append((r.status_code, r.text))
                    n += 1

            def acks() -> int:
                with lock:
                    return len(acked)

            with ThreadPoolExecutor(max_workers=MIGRATIONS) as pool:
                futures = [pool.submit(writer, i) for i in range(MIGRATIONS)]
                try:
                    # Mid-burst: writes acknowledged and some of them already projected.
                    wait_for(
                        lambda: (
                            acks() >= ACKS_BEFORE_KILL
                            and tracked_position(store_env) > before_burst
                        ),
                        BURST_TIMEOUT,
                        "the burst to be under way and partly projected",
                    )
                    killed_at = time.monotonic()
                    active.process.kill()
                    active.process.wait(timeout=10)
                    position_at_kill = tracked_position(store_env)
                    wait_for(
                        lambda: holder_name(target) == standby.name,
                        TAKEOVER_LIMIT,
                        "the standby to take over",
                    )
                    takeover = time.monotonic() - killed_at
                    wait_for(
                        lambda: acks() >= ACKS_BEFORE_KILL + ACKS_AFTER_KILL,
                        BURST_TIMEOUT,
                        "the rest of the burst",
                    )
                finally:
                    done.set()
                for f in futures:
                    f.result(timeout=BURST_TIMEOUT)

            assert failed == []
            wait_caught_up(https[1])  # only the new active projector can have moved it there
            assert tracked_position(store_env) > position_at_kill
            assert standby.process.poll() is None
            no_errors(standby)
            assert "projector active" in standby.output()
            print(f"takeover after SIGKILL: {takeover:.2f}s")  # shown with -s

        tracker = Tracker(env=store_env)
        read_side = ReadSide(tracker, store_env)
        try:
            stored = tracker.recorder.select_notifications(None, 10**6)
            projected = read_side.view.dump(tracker.name)
            size = read_side.ledger.size()
            projected_root = read_side.ledger.root(size)
            heads = read_side.ledger.heads(limit=10**6)
            verified = read_side.verify(signer.public_key, signer.last_head())
            read_side.rebuild()
            rebuilt = read_side.view.dump(tracker.name)
            rebuilt_root = read_side.ledger.root(read_side.ledger.size())
        finally:
            read_side.close()
            tracker.close()

        # Nothing applied twice, nothing skipped: one audit row per stored migration event,
        # one ledger leaf per stored event, in order.
        positions = [row[0] for row in projected["audit"]]
        assert positions == [n.id for n in stored if n.topic.startswith(MIGRATION_TOPIC_PREFIX)]
        assert len(set(positions)) == len(positions)
        leaves = projected["ledger_leaves"]
        assert [row[0] for row in leaves] == list(range(len(stored)))
        assert [row[1] for row in leaves] == [n.id for n in stored]
        assert len(positions) >= MIGRATIONS + ACKS_BEFORE_KILL + ACKS_AFTER_KILL
        # The same views as a fresh projection of the same store, and the same ledger root,
        # which is also the root recomputed from the stored events themselves.
        assert projected == rebuilt
        recomputed = CompactRange()
        for n in stored:
            recomputed.append(leaf_of(n))
        assert size == recomputed.size == len(stored)
        assert projected_root == rebuilt_root == recomputed.root()
        # Heads signed by each projector, before and after the takeover, all roots of the store.
        assert any(h.tree_size <= position_at_kill for h in heads)
        assert any(h.tree_size > position_at_kill for h in heads)
        assert verified["ok"], verified


@pytest.mark.slow
class TestTwoProjectorsStartAtOnceOnAFreshSchema:
    def test_both_come_up_one_active_one_standby(
        self, postgres_only: dict[str, str], tmp_path: Path
    ) -> None:
        store_env = postgres_only  # an empty schema: no table exists yet
        key = tmp_path / "ledger.key"
        Signer.generate(key)
        target = views_target(store_env)
        start_at = f"{time.time() + 3.0:.3f}"
        with ExitStack() as stack:
            projectors = [
                stack.enter_context(
                    spawned(
                        ["-c", AT_ONCE, start_at, "project"],
                        process_env(store_env, key, f"projector-{x}-{uuid.uuid4().hex[:8]}"),
                        tmp_path / f"projector-{x}.log",
                    )
                )
                for x in "ab"
            ]
            active_name = wait_for(
                lambda: alive(*projectors) or holder_name(target), START_TIMEOUT, "a projector"
            )
            (standby,) = [p for p in projectors if p.name != active_name]
            wait_for(
                lambda: alive(*projectors) or "standing by" in standby.output(),
                START_TIMEOUT,
                "the standby",
            )
            time.sleep(1.0)  # a crash after coming up would show by now
            for p in projectors:
                assert p.process.poll() is None, p.output()
                no_errors(p)
            assert holder_name(target) == active_name
            for p in projectors:
                p.process.terminate()
                assert p.process.wait(timeout=15) == 0, p.output()
        assert holder_name(target) is None  # a stopped projector leaves no lock behind
