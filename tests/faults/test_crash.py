"""The server killed with SIGKILL in the middle of a write burst, then restarted.

32 writers post at once, 2 to each of 16 migrations, so the server group-commits (several
requests' events in one store transaction: api/appender.py, domain/group_commit.py): no
acknowledged write may be lost with the group it was committed in, and no group may be
half-stored."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bench.server import serving
from domain.application import Tracker
from projections import ReadSide
from tests.faults.conftest import (
    Keys,
    Outcome,
    client,
    new_migration,
    note,
    stored_notes,
    wait_caught_up,
)

MIGRATIONS = 16
WRITERS_PER_MIGRATION = 2
ACKS_BEFORE_KILL = 120
BURST_TIMEOUT = 30.0
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def store_commits(http: httpx.Client) -> dict[str, float]:
    """The server's group-commit counters, from /metrics (loopback needs no token)."""
    figures: dict[str, float] = {}
    for line in http.get("/metrics").text.splitlines():
        for name in ("transactions", "saves", "events"):
            if line.startswith(f"csp_store_{name}_total "):
                figures[name] = float(line.split()[1])
    return figures


def read_views(read_side: ReadSide) -> dict[str, Any]:
    """Every audit row and every migration the views hold, paged to the end."""
    audit: list[dict] = []
    after = None
    while True:
        rows, after = read_side.queries.audit(after=after, limit=500)
        audit += rows
        if after is None:
            break
    migrations: list[dict] = []
    cursor = None
    while True:
        items, cursor = read_side.queries.list_migrations(now=NOW, limit=500, cursor=cursor)
        migrations += items
        if cursor is None:
            break
    return {"audit": audit, "migrations": migrations}


class TestTheServerIsKilledDuringAWriteBurst:
    """Given writers posting notes to several migrations when the server gets SIGKILL."""

    @pytest.fixture
    def crashed(self, store_env: dict[str, str], keys: Keys) -> Iterator[dict[str, Any]]:
        with serving(store_env, workers=1) as (url, proc), client(url, keys) as http:
            migrations = [new_migration(http)["id"] for _ in range(MIGRATIONS)]
            acked: list[Outcome] = []
            refused: list[Outcome] = []
            unanswered: list[Outcome] = []
            lock = threading.Lock()
            killed = threading.Event()
            enough = threading.Event()
            deadline = time.monotonic() + BURST_TIMEOUT

            def writer(i: int) -> None:
                mid = migrations[i % MIGRATIONS]
                n = 0
                while not killed.is_set() and time.monotonic() < deadline:
                    correlation = f"burst-{i}-{n}-{uuid.uuid4().hex[:6]}"
                    sent = Outcome(correlation, extra={"migration": mid})
                    try:
                        r = http.post(
                            f"/v1/migrations/{mid}/events",
                            json=note(correlation),
                            headers={"X-Correlation-ID": correlation},
                            timeout=10,
                        )
                    except httpx.HTTPError as e:
                        sent.error = repr(e)
                        with lock:
                            unanswered.append(sent)
                        return
                    sent.status, sent.body = r.status_code, r.json()
                    with lock:
                        (acked if r.status_code == 201 else refused).append(sent)
                        if len(acked) >= ACKS_BEFORE_KILL:
                            enough.set()
                    n += 1

            writers = MIGRATIONS * WRITERS_PER_MIGRATION
            with ThreadPoolExecutor(max_workers=writers) as pool:
                futures = [pool.submit(writer, i) for i in range(writers)]
                assert enough.wait(BURST_TIMEOUT), f"only {len(acked)} writes acknowledged"
                commits = store_commits(http)
                proc.kill()
                killed.set()
                proc.wait(timeout=10)
                for f in futures:
                    f.result(timeout=BURST_TIMEOUT)
            with lock:
                snapshot = {
                    "migrations": migrations,
                    "acked": list(acked),
                    "refused": list(refused),
                    "unanswered": list(unanswered),
                    "commits": commits,
                }
        yield snapshot

    def test_the_burst_was_group_committed(self, crashed):
        # Several posts' events shared a transaction before the kill: the case this test is
        # about (the appender records the posts it drains in one save, api/appender.py).
        commits = crashed["commits"]
        assert commits["events"] > commits["transactions"] > 0, commits

    def test_every_answered_write_was_acknowledged_before_the_kill(self, crashed):
        # Writes to one migration race (no If-Match): a loser may get 412, never anything else.
        assert {o.status for o in crashed["refused"]} <= {412}
        assert all(o.body["error"] == "version_conflict" for o in crashed["refused"])
        assert len(crashed["acked"]) >= ACKS_BEFORE_KILL

    def test_the_store_holds_every_acknowledged_event_and_no_unrequested_one(
        self, store_env, crashed
    ):
        acked = {o.label: (o.extra["migration"], o.body["version"]) for o in crashed["acked"]}
        in_flight = {o.label for o in crashed["unanswered"]}
        refused = {o.label for o in crashed["refused"]}
        stored: dict[str, tuple[str, int]] = {}
        for mid in crashed["migrations"]:
            # stored_notes asserts each migration's versions are contiguous: none half-written
            for version, text, correlation in stored_notes(store_env, mid):
                assert text == correlation
                assert text not in stored, f"{text} stored twice"
                stored[text] = (mid, version)
        assert {k: stored.get(k) for k in acked} == acked  # acknowledged ⊆ stored, same place
        assert set(stored) - set(acked) <= in_flight
        assert not refused & set(stored)

    def test_a_restarted_server_serves_every_acknowledged_write(self, store_env, keys, crashed):
        with serving(store_env, workers=1) as (url, _proc), client(url, keys) as http:
            for mid in crashed["migrations"]:
                r = http.get(f"/v1/migrations/{mid}")
                assert r.status_code == 200, r.text
                mine = [o for o in crashed["acked"] if o.extra["migration"] == mid]
                assert r.json()["version"] >= max((o.body["version"] for o in mine), default=1)
            after = http.post(
                f"/v1/migrations/{crashed['migrations'][0]}/events", json=note("after restart")
            )
            assert after.status_code == 201, after.text

    def test_after_restart_the_views_catch_up_to_what_a_rebuild_produces(
        self, store_env, keys, crashed
    ):
        with serving(store_env, workers=1) as (url, _proc), client(url, keys) as http:
            wait_caught_up(http)
        tracker = Tracker(env=store_env)
        head = tracker.recorder.max_notification_id()
        read_side = ReadSide(tracker, store_env)
        try:
            assert read_side.lag()["audit"]["position"] == head
            caught_up = read_views(read_side)
            read_side.rebuild()
            rebuilt = read_views(read_side)
            assert read_side.queries.verify()["ok"] is True
        finally:
            read_side.close()
            tracker.close()
        assert caught_up == rebuilt
        stored_events = sum(
            len(stored_notes(store_env, mid)) + 1 for mid in crashed["migrations"]
        )  # each migration's notes plus its relationship request
        assert len(caught_up["audit"]) == stored_events
        assert {m["id"] for m in caught_up["migrations"]} == set(crashed["migrations"])
