"""A store written before the domain rules changed still loads, projects and verifies.

tests/fixtures/store-v0.1.0.db was written by the code of commit b6d60d2 (the demo, plus one
long migration with a DAP grant and removal, a late license reduction and a snapshot), with its
views projected then. On PostgreSQL the same stored events and snapshots are copied into a fresh
schema, so both stores read the old formats through the same upcasters.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application import Tracker
from domain.decider import START
from domain.rules import standing_risks
from domain.state import replay
from projections import ReadSide
from tests.conftest import sqlite_env

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store-v0.1.0.db"


def _rows(table: str) -> list[tuple]:
    with sqlite3.connect(FIXTURE) as conn:
        return conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM "
            + table
            + (" ORDER BY rowid" if table == "stored_events" else "")
        ).fetchall()


@pytest.fixture
def old_store(store_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The fixture's store, as SQLite (a copy of the file) or copied into PostgreSQL."""
    if store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        path = tmp_path / "old.db"
        shutil.copy(FIXTURE, path)
        return sqlite_env(path)
    app = Tracker(env=store_env)
    try:
        for table, recorder in (
            ("stored_events", app.recorder),
            ("stored_snapshots", app.snapshots.recorder if app.snapshots else None),
        ):
            assert recorder is not None
            events = [StoredEvent(UUID(i), v, t, s) for i, v, t, s in _rows(table)]
            recorder.insert_events(events)
    finally:
        app.close()
    return store_env


def _migration_ids(app: Tracker) -> list[UUID]:
    topic = START.TOPIC
    return [
        n.originator_id for n in app.recorder.select_notifications(None, 10_000, topics=[topic])
    ]


class TestGivenAStoreWrittenBeforeTheDomainRules:
    def test_every_migration_loads_and_equals_a_replay_of_its_events(self, old_store):
        app = Tracker(env=old_store)
        try:
            ids = _migration_ids(app)
            assert len(ids) == 37
            for mid in ids:
                loaded = app.get(mid)  # from the snapshot where there is one
                assert loaded.state == replay(app.history(mid)), mid
            by_name = {app.get(m).state.customer_name: app.get(m).state for m in ids}
            # Version 1 provisioning (one original, stored without family): upcast and evolved.
            # Fabrikam's scenarios in the old demo's order: Blue Yonder is the license
            # shortfall, Woodgrove the retired offer, Trey the grace period.
            retired = by_name["Woodgrove Bank Ltd"]
            assert retired.replacements["csp-1"].replaces == ("orig-1",)
            assert retired.replacements["csp-1"].reassignment_pending is True
            assert "license_shortfall" in standing_risks(by_name["Blue Yonder Airlines Ltd"])
            assert by_name["Trey Research Ltd"].originals["orig-1"].status == "expired"
            # Version 1 admin access (one slot: DAP granted then removed, then GDAP), upcast
            # under one relationship id: the GDAP superseded the DAP, which is kept as history.
            long = by_name["Long Running Ltd"]
            assert long.admin_access["legacy"].kind == "gdap"
            assert long.admin_access["legacy"].removed_at is None
            [dap] = [r for key, r in long.admin_access.items() if key != "legacy"]
            assert dap.kind == "dap" and dap.removed_at is not None
            # The late reduction stored before the 7-day rule still evolves.
            assert long.replacements["csp-1"].licenses == 28
            assert long.notes == 110
            assert long.stage == "provisioned"  # its original is still active
            assert "license_shortfall" in standing_risks(long)  # 30 seats, then 28
        finally:
            app.close()

    def test_the_old_views_are_rebuilt_and_verify(self, old_store, tmp_path):
        from projections.heads import Signer
        from projections.projector import HeadPolicy

        signer = Signer.generate(tmp_path / "ledger.key")
        app = Tracker(env=old_store)
        read_side = ReadSide(app, old_store, heads=HeadPolicy(signer))
        try:
            head = app.recorder.max_notification_id()
            # The views were built with the old layout: dropped, so the runner starts over.
            assert read_side.runner.position() == 0
            read_side.catch_up()
            assert read_side.runner.position() == head
            result = read_side.queries.verify()
            assert result["ok"] is True, result
            assert result["rows_checked"] == 281  # the migration events (the rest: keys, claims)
            # The store itself verifies from where links began: none of its events has one, and
            # the first event written now links to the last stored one of its migration.
            read_side.issue_head(force=True)
            full = read_side.verify(signer.public_key)
            assert full["ok"] is True, full["failures"]
            assert full["events_verified"] == full["events_in_store"] == head
            assert full["events_linked"] == 0
            assert full["snapshots_stale"] == 1  # written in the old format: never used
            # An export of the old rows verifies offline too (rows show fields added since).
            from projections.proofs import export_with_proofs, verify_export

            rows, _ = read_side.queries.audit(limit=1000)
            lines = export_with_proofs(read_side, app, read_side.ledger.latest_head(), rows)
            offline = verify_export(list(lines), signer.public_key)
            assert offline["ok"] is True, offline["failures"][:3]
            assert offline["rows_verified"] == 281
            mid = _migration_ids(app)[0]
            from domain.commands import Command
            from domain.context import Context

            app.execute(mid, Context("alice", "account_admin"), Command.of("note_added", text="n"))
            read_side.issue_head(force=True)
            after = read_side.verify(signer.public_key)
            assert after["ok"] is True, after["failures"]
            assert after["events_linked"] == 1
            from datetime import UTC, datetime

            items, _ = read_side.queries.list_migrations(now=datetime.now(UTC), limit=500)
            assert len(items) == 37
        finally:
            read_side.close()
            app.close()

    def test_new_commands_work_on_old_migrations(self, old_store):
        from domain.commands import Command
        from domain.context import Context

        app = Tracker(env=old_store)
        try:
            ids = _migration_ids(app)
            mid = next(m for m in ids if app.get(m).state.customer_name == "Long Running Ltd")
            ctx = Context("alice", "account_admin")
            done = app.execute(
                mid, ctx, Command.of("admin_access_removed", relationship_id="legacy")
            )
            assert done.migration.state.admin_access["legacy"].removed_at is not None
        finally:
            app.close()
