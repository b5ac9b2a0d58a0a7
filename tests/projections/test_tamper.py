"""The tamper matrix: an insider with write access to the database changes the history in each
way below; `verify` names each case (and, where the case needs it, `--against` a head saved
before). On SQLite and PostgreSQL, through the raw tables, as an insider would."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from domain.application import Tracker
from projections import ReadSide
from projections.heads import Signer
from projections.projector import HeadPolicy
from tests.conftest import PG
from tests.factories import ADMIN, record
from tests.projections.conftest import record_original, request


class RawStore:
    """The tables as an insider sees them."""

    def __init__(self, env: dict[str, str]) -> None:
        self.sqlite = env.get("SQLITE_DBNAME")
        self.schema = env.get("POSTGRES_SCHEMA")

    @contextmanager
    def sql(self) -> Iterator[Any]:
        if self.sqlite:
            conn = sqlite3.connect(self.sqlite)
            try:
                yield conn
                conn.commit()
            finally:
                conn.close()
        else:
            with psycopg.connect(**PG, autocommit=True) as conn:
                conn.execute(f'SET search_path TO "{self.schema}"')
                yield conn

    @property
    def events(self) -> str:
        return "stored_events" if self.sqlite else "csp_tracker_events"

    @property
    def snapshots(self) -> str:
        return "stored_snapshots" if self.sqlite else "csp_tracker_snapshots"

    def _id(self, mid: Any) -> Any:
        return mid.hex if self.sqlite else mid

    def run(self, statement: str, params: tuple = ()) -> list[tuple]:
        statement = statement.replace("?", "%s") if not self.sqlite else statement
        with self.sql() as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def state(self, mid: Any, version: int, table: str | None = None) -> dict:
        [(state,)] = self.run(
            f"SELECT state FROM {table or self.events} "
            "WHERE originator_id = ? AND originator_version = ?",
            (self._id(mid), version),
        )
        return json.loads(bytes(state))

    def set_state(self, mid: Any, version: int, state: dict, table: str | None = None) -> None:
        self.run(
            f"UPDATE {table or self.events} SET state = ? "
            "WHERE originator_id = ? AND originator_version = ?",
            (json.dumps(state).encode(), self._id(mid), version),
        )

    def set_version(self, mid: Any, old: int, new: int) -> None:
        self.run(
            f"UPDATE {self.events} SET originator_version = ? "
            "WHERE originator_id = ? AND originator_version = ?",
            (new, self._id(mid), old),
        )

    def delete(self, mid: Any, version: int) -> None:
        self.run(
            f"DELETE FROM {self.events} WHERE originator_id = ? AND originator_version = ?",
            (self._id(mid), version),
        )

    def delete_newest(self, n: int) -> None:
        order = "rowid" if self.sqlite else "notification_id"
        self.run(
            f"DELETE FROM {self.events} WHERE {order} IN "
            f"(SELECT {order} FROM {self.events} ORDER BY {order} DESC LIMIT {n})"
        )


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.key"
    Signer.generate(path)
    return path


@pytest.fixture
def ledger(app: Tracker, store_env: dict[str, str], key: Path) -> Iterator[ReadSide]:
    side = ReadSide(app, store_env, batch_size=50, heads=HeadPolicy(Signer.from_file(key)))
    try:
        yield side
    finally:
        side.close()


@pytest.fixture
def stocked(app: Tracker, ledger: ReadSide, store_env: dict[str, str]) -> dict[str, Any]:
    """Two migrations (one long enough to have a snapshot), projected, with a signed head."""
    a = request(app)
    record_original(app, a, licenses=25)
    for i in range(101):
        record(app, "note_added", a, ADMIN, text=f"weekly check {i}")
    b = request(app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove")
    record_original(app, b, licenses=40)
    record(app, "invitation_accepted", b, ADMIN, accepted_by="ga@woodgrove.example")
    record(app, "note_added", b, ADMIN, text="kick-off")
    head = ledger.issue_head(force=True)
    assert head is not None
    return {"a": a, "b": b, "head": head, "raw": RawStore(store_env)}


def verify(app: Tracker, ledger: ReadSide, key: Path, against: Any = None) -> dict:
    return ledger.verify(Signer.from_file(key).public_key, against)


def failed(result: dict, check: str) -> dict:
    assert result["ok"] is False
    checks = [f["check"] for f in result["failures"]]
    assert check in checks, result["failures"]
    return next(f for f in result["failures"] if f["check"] == check)


class TestAnUntouchedStore:
    def test_verifies_every_event_and_snapshot_and_the_views(self, app, ledger, key, stocked):
        result = verify(app, ledger, key)
        assert result["ok"] is True, result["failures"]
        assert result["events_verified"] == result["events_in_store"] > 100
        assert result["events_linked"] == 107  # every migration event (103 + 4)
        assert result["snapshots_checked"] == 1
        assert result["signed_head"]["tree_size"] == result["events_in_store"]
        assert result["views"]["audit"]["ok"] is True

    def test_an_unprojected_store_is_verified_from_the_events(self, app, store_env, key):
        mid = request(app)
        record_original(app, mid)
        bare = ReadSide(app, store_env, heads=None)
        try:
            result = bare.verify(Signer.from_file(key).public_key)
        finally:
            bare.close()
        assert result["events_verified"] == result["events_in_store"] > 0
        assert result["views"]["status"] == "not_projected"
        # Nothing anchors it yet, and verify says so rather than "ok".
        assert failed(result, "signed_head")["reason"].startswith("no signed tree head")


class TestTheTamperMatrix:
    def test_an_edited_audit_row(self, app, ledger, key, stocked):
        ledger.view.fetch("SELECT 1")  # the views are in the same database
        with ledger.view.write() as c:
            c.execute(
                ledger.view.sql("UPDATE {audit} SET principal = 'mallory' WHERE position = 5")
            )
        assert failed(verify(app, ledger, key), "audit_view")["position"] == 5

    def test_an_edited_and_rechained_audit_row(self, app, ledger, key, stocked):
        from projections import rows

        found = ledger.view.fetch("SELECT * FROM {audit} WHERE position = 5")
        row = rows.audit_dict(found[0])
        row["principal"] = "mallory"
        row["hash"] = rows.chain_hash(row)
        with ledger.view.write() as c:
            c.execute(
                ledger.view.sql("UPDATE {audit} SET principal = ?, hash = ? WHERE position = 5"),
                ("mallory", row["hash"]),
            )
        assert failed(verify(app, ledger, key), "audit_view")["position"] == 5

    def test_an_edited_stored_event(self, app, ledger, key, stocked):
        raw, b = stocked["raw"], stocked["b"]
        state = raw.state(b, 2)
        state["licenses"] = 5
        raw.set_state(b, 2, state)
        result = verify(app, ledger, key)
        link = failed(result, "stream_link")
        assert "version 3" in link["reason"]
        failed(result, "signed_head")  # the root at the head's size differs too

    def test_an_edited_stored_event_then_a_rebuilt_audit_view(self, app, ledger, key, stocked):
        raw, a = stocked["raw"], stocked["a"]
        state = raw.state(a, 2)
        state["licenses"] = 5
        raw.set_state(a, 2, state)
        ledger.rebuild("audit")
        result = verify(app, ledger, key)
        failed(result, "stream_link")
        failed(result, "signed_head")

    def test_two_versions_swapped(self, app, ledger, key, stocked):
        raw, a = stocked["raw"], stocked["a"]
        raw.set_version(a, 5, -1)
        raw.set_version(a, 6, 5)
        raw.set_version(a, -1, 6)
        result = verify(app, ledger, key)
        assert {f["check"] for f in result["failures"]} >= {"stream_order", "signed_head"}

    def test_an_event_deleted_and_the_rest_renumbered(self, app, ledger, key, stocked):
        raw, b = stocked["raw"], stocked["b"]
        raw.delete(b, 3)
        raw.set_version(b, 4, 3)
        result = verify(app, ledger, key)
        assert "version 3" in failed(result, "stream_link")["reason"]
        failed(result, "signed_head")

    def test_the_newest_events_deleted(self, app, ledger, key, stocked):
        stocked["raw"].delete_newest(2)
        reason = failed(verify(app, ledger, key), "signed_head")["reason"]
        assert "events were deleted" in reason

    def test_a_forged_snapshot(self, app, ledger, key, stocked, store_env):
        raw, a = stocked["raw"], stocked["a"]
        snapshot = raw.state(a, 100, raw.snapshots)
        inner = snapshot["state"]["state"]["_data_"]
        inner["accepted_by"] = "forged@contoso.example"
        inner["originals"]["orig-1"]["licenses"] = 2500
        raw.set_state(a, 100, snapshot, raw.snapshots)
        fresh = Tracker(env=store_env)  # a process that has not cached the migration
        try:
            assert fresh.get(a).state.originals["orig-1"].licenses == 2500  # it acts on it
        finally:
            fresh.close()
        assert "differs from a replay" in failed(verify(app, ledger, key), "snapshot")["reason"]

    def test_a_replaced_signing_key(self, app, ledger, key, stocked, tmp_path):
        """The insider has write access but not the key: they re-sign with a key of their
        own and replace the key file. The auditor pinned the old public key."""
        pinned = Signer.from_file(key).public_key
        saved = stocked["head"]
        key.unlink()
        theirs = Signer.generate(key)
        forged = theirs.sign(saved.tree_size, bytes.fromhex(saved.root_hash))
        with ledger.view.write() as c:
            c.execute(ledger.view.sql("DELETE FROM {ledger_heads}"))
            c.execute(
                ledger.view.sql(
                    "INSERT INTO {ledger_heads} (tree_size, root_hash, timestamp, key_id, "
                    "signature) VALUES (?, ?, ?, ?, ?)"
                ),
                (forged.tree_size, forged.root_hash, forged.timestamp, forged.key_id,
                 forged.signature),
            )  # fmt: skip
        # With the replaced key file, heads look fine; with the pinned key they do not.
        assert verify(app, ledger, key)["ok"] is True
        result = ledger.verify(pinned, saved)
        assert "not genuine" in failed(result, "signed_head")["reason"]

    def test_an_altered_stored_head(self, app, ledger, key, stocked):
        with ledger.view.write() as c:
            c.execute(ledger.view.sql("UPDATE {ledger_heads} SET root_hash = ?"), ("00" * 32,))
        assert "bad signature" in failed(verify(app, ledger, key), "signed_head")["reason"]


class TestAgainstASavedHead:
    def test_a_later_head_extends_the_saved_one(self, app, ledger, key, stocked):
        record(app, "note_added", stocked["b"], ADMIN, text="later")
        ledger.issue_head(force=True)
        result = verify(app, ledger, key, against=stocked["head"])
        assert result["ok"] is True, result["failures"]
        assert result["against"]["tree_size"] == stocked["head"].tree_size

    def _rewrite(self, ledger, stocked) -> None:
        """Rewrite an event, re-link every event after it, rebuild every view and the ledger,
        and delete the stored heads: a consistent forged history."""
        raw, b = stocked["raw"], stocked["b"]
        state = raw.state(b, 2)
        state["licenses"] = 5
        raw.set_state(b, 2, state)
        _rechain(raw, b, from_version=3)
        ledger.rebuild()
        with ledger.view.write() as c:
            c.execute(ledger.view.sql("DELETE FROM {ledger_heads}"))

    def test_a_rewritten_history_is_never_signed(self, app, ledger, key, stocked):
        self._rewrite(ledger, stocked)
        assert ledger.issue_head(force=True) is None  # the signer refuses: it forked
        assert failed(verify(app, ledger, key), "signed_head")
        last = Signer.from_file(key).last_head()  # the signer's own record, beside its key
        assert last is not None and last.root_hash == stocked["head"].root_hash
        result = verify(app, ledger, key, against=last)
        assert "a stored event was changed" in failed(result, "against")["reason"]

    def test_with_the_key_and_its_record_stolen_the_saved_head_still_catches_it(
        self, app, ledger, key, stocked
    ):
        """The insider test: even re-signing with the stolen key (and its record of the last
        head removed) leaves a history that only an auditor's saved head tells apart."""
        self._rewrite(ledger, stocked)
        Path(str(key) + ".last-head.json").unlink()
        assert ledger.issue_head(force=True) is not None
        assert verify(app, ledger, key)["ok"] is True  # consistent in itself
        result = verify(app, ledger, key, against=stocked["head"])
        assert "a stored event was changed" in failed(result, "against")["reason"]


def _rechain(raw: RawStore, mid: Any, from_version: int) -> None:
    """Recompute the stream links after an edit, as a careful insider would."""
    from domain.chain import link

    topic_of = {
        v: t
        for v, t in raw.run(
            f"SELECT originator_version, topic FROM {raw.events} WHERE originator_id = ?",
            (raw._id(mid),),
        )
    }
    version = from_version
    while version in topic_of:
        before = version - 1
        [(state,)] = raw.run(
            f"SELECT state FROM {raw.events} WHERE originator_id = ? AND originator_version = ?",
            (raw._id(mid), before),
        )
        current = raw.state(mid, version)
        current["_prev"] = link(mid, before, topic_of[before], bytes(state))
        raw.set_state(mid, version, current)
        version += 1


class TestAnAuditorsReview:
    """Tampering a review by an auditor found undetected, each now named by verify."""

    def test_an_event_stored_under_another_spelling_of_its_id(self, app, ledger, key, stocked):
        raw = stocked["raw"]
        if not raw.sqlite:
            pytest.skip("PostgreSQL stores ids as uuid: there is one spelling")
        raw.run(
            f"UPDATE {raw.events} SET originator_id = upper(originator_id) "
            "WHERE originator_id = ? AND originator_version = 3",
            (stocked["b"].hex,),
        )
        assert "id column" in failed(verify(app, ledger, key), "stored_id")["reason"]

    def test_a_forged_snapshot_of_another_aggregate(self, app, ledger, key, stocked):
        from domain.access import issue_key, list_keys

        issue_key(app, "k", "sales_agent", "fabrikam")
        [k] = [k for k in list_keys(app) if k.name == "k"]
        app.take_snapshot(k.id)
        raw = stocked["raw"]
        [(version,)] = raw.run(
            f"SELECT originator_version FROM {raw.snapshots} WHERE originator_id = ?",
            (raw._id(k.id),),
        )
        snapshot = raw.state(k.id, version, raw.snapshots)
        snapshot["state"]["role"] = "auditor"
        raw.set_state(k.id, version, snapshot, raw.snapshots)
        assert "differs from a replay" in failed(verify(app, ledger, key), "snapshot")["reason"]

    def test_a_migration_snapshot_with_a_back_dated_time(self, app, ledger, key, stocked):
        raw, a = stocked["raw"], stocked["a"]
        snapshot = raw.state(a, 100, raw.snapshots)
        snapshot["state"]["_modified_on"]["_data_"] = "2026-10-01T00:00:00+00:00"
        raw.set_state(a, 100, snapshot, raw.snapshots)
        failed(verify(app, ledger, key), "snapshot")

    def test_links_stripped_from_events_written_after_links_began(self, app, ledger, key, stocked):
        raw, b = stocked["raw"], stocked["b"]
        for version in (3, 4):
            state = raw.state(b, version)
            del state["_prev"]
            raw.set_state(b, version, state)
        assert (
            "written after links began" in failed(verify(app, ledger, key), "stream_link")["reason"]
        )

    def test_a_stored_event_that_is_no_object_is_named_not_a_crash(self, app, ledger, key, stocked):
        stocked["raw"].run(
            f"UPDATE {stocked['raw'].events} SET state = ? WHERE originator_id = ? "
            "AND originator_version = 3",
            (b"[1]", stocked["raw"]._id(stocked["b"])),
        )
        failed(verify(app, ledger, key), "stored_event")

    def test_a_reset_tracking_position_does_not_hide_an_edited_view(
        self, app, ledger, key, stocked
    ):
        with ledger.view.write() as c:
            c.execute(
                ledger.view.sql("UPDATE {audit} SET principal = 'mallory' WHERE position = 5")
            )
            c.execute(ledger.view.sql("UPDATE {tracking} SET notification_id = 0"))
        result = verify(app, ledger, key)
        failed(result, "audit_view")
        failed(result, "views_lag")

    def test_an_edited_current_state_row(self, app, ledger, key, stocked):
        with ledger.view.write() as c:
            c.execute(
                ledger.view.sql("UPDATE {migrations} SET state = replace(state, '40', '2500')")
            )
        failed(verify(app, ledger, key), "migrations_view")

    def test_an_edited_search_row(self, app, ledger, key, stocked):
        # Hides a migration from `?q=` (or shows it for a text it does not hold).
        with ledger.view.write() as c:
            c.execute(ledger.view.sql("UPDATE {migration_search} SET customer_name = 'x'"))
        failed(verify(app, ledger, key), "migrations_view")

    def test_a_deleted_search_row(self, app, ledger, key, stocked):
        with ledger.view.write() as c:
            c.execute(ledger.view.sql("DELETE FROM {migration_search}"))
        failed(verify(app, ledger, key), "migrations_view")
