"""verify(): the audit chain against itself and against the event store."""

from __future__ import annotations

import json
import sqlite3

import psycopg

from tests.conftest import PG
from tests.factories import ADMIN, record
from tests.projections.conftest import record_original, request


def given_a_history(app, read_side):
    mid = request(app)
    record_original(app, mid)
    record(app, "note_added", mid, ADMIN, text="original text")
    request(app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove")
    read_side.catch_up()
    rows, _ = read_side.queries.audit(event_type="note_added")
    return rows[0]["position"]


def execute(store_env, sql_sqlite, sql_pg, params):
    if store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        with sqlite3.connect(store_env["SQLITE_DBNAME"]) as conn:
            return conn.execute(sql_sqlite, params).fetchall()
    schema = store_env["POSTGRES_SCHEMA"]
    with psycopg.connect(**PG, autocommit=True) as conn:
        cur = conn.execute(sql_pg.replace("{s}", f'"{schema}"'), params)
        return cur.fetchall() if cur.description else []


class TestGivenUntouchedStores:
    def test_verify_is_ok_and_reports_the_head_hash(self, app, read_side):
        given_a_history(app, read_side)
        result = read_side.queries.verify()
        rows, _ = read_side.queries.audit(order="desc", limit=1)
        assert result == {
            "ok": True,
            "rows_checked": 4,
            "head_hash": rows[0]["hash"],
            "first_bad_position": None,
            "reason": None,
        }

    def test_verify_from_a_position_checks_only_the_tail(self, app, read_side):
        position = given_a_history(app, read_side)
        result = read_side.queries.verify(from_position=position)
        assert result["ok"] and result["rows_checked"] == 2


class TestGivenAnEditedAuditRow:
    def test_verify_names_the_edited_position(self, app, read_side, store_env):
        position = given_a_history(app, read_side)
        execute(
            store_env,
            "UPDATE view_audit SET payload = ? WHERE position = ?",
            'UPDATE {s}."view_audit" SET payload = %s WHERE position = %s',
            ('{"text":"forged text"}', position),
        )
        result = read_side.queries.verify()
        assert result["ok"] is False
        assert result["first_bad_position"] == position
        assert "altered" in result["reason"]


class TestGivenAnEditedStoredEvent:
    def test_verify_names_the_position_of_the_event(self, app, read_side, store_env):
        position = given_a_history(app, read_side)
        [(state,)] = execute(
            store_env,
            "SELECT state FROM stored_events WHERE rowid = ?",
            'SELECT state FROM {s}."csp_tracker_events" WHERE notification_id = %s',
            (position,),
        )
        data = json.loads(bytes(state))
        data["text"] = "forged text"
        forged = json.dumps(data).encode()
        execute(
            store_env,
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            'UPDATE {s}."csp_tracker_events" SET state = %s WHERE notification_id = %s',
            (forged, position),
        )
        result = read_side.queries.verify()
        assert result["ok"] is False
        assert result["first_bad_position"] == position
        assert "stored event" in result["reason"]
        assert result["rows_checked"] == 2
