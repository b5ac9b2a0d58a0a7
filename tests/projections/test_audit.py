"""The `audit` view: one row per Migration event in global order, hash-chained, and its export."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from itertools import pairwise

from projections.rows import GENESIS_HASH, chain_hash
from tests.factories import ADMIN, BILLING, record
from tests.projections.conftest import NOW, record_original, request


def given_two_migrations(app):
    a = request(app)
    record_original(app, a)
    record(app, "note_added", a, ADMIN, text="kick-off: «café» ✓")
    b = request(app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove")
    record(app, "credit_requested", a, BILLING, subscription_id="orig-1", requested_by="customer")
    return a, b


class TestGivenRecordedEvents:
    def test_one_row_per_migration_event_in_position_order(self, app, read_side):
        a, b = given_two_migrations(app)
        read_side.catch_up()
        rows, cursor = read_side.queries.audit(limit=100)

        migration_events = [
            e for mid in (a, b) for e in app.history(mid)
        ]  # per migration; compare as sets of (id, version)
        assert len(rows) == len(migration_events)
        assert cursor is None
        positions = [r["position"] for r in rows]
        assert positions == sorted(positions)
        assert [r["event_type"] for r in rows] == [
            "relationship_requested",
            "original_subscription_recorded",
            "note_added",
            "relationship_requested",
            "credit_requested",
        ]
        note = rows[2]
        assert note["payload"] == {"text": "kick-off: «café» ✓"}
        assert note["principal"] == ADMIN.principal and note["role"] == "account_admin"
        assert note["partner_id"] == "fabrikam"
        assert note["tenant_id"] == "contoso.onmicrosoft.com"

    def test_rows_form_a_hash_chain_from_the_genesis(self, app, read_side):
        given_two_migrations(app)
        read_side.catch_up()
        rows, _ = read_side.queries.audit()
        assert rows[0]["prev_hash"] == GENESIS_HASH
        for prev, row in pairwise(rows):
            assert row["prev_hash"] == prev["hash"]
        assert all(chain_hash(r) == r["hash"] for r in rows)

    def test_filters_select_matching_rows(self, app, read_side):
        a, b = given_two_migrations(app)
        read_side.catch_up()
        q = read_side.queries

        assert {r["migration_id"] for r in q.audit(partner_id="northwind")[0]} == {str(b)}
        assert len(q.audit(migration_id=str(a))[0]) == 4
        assert len(q.audit(tenant_id="woodgrove.onmicrosoft.com")[0]) == 1
        assert [r["event_type"] for r in q.audit(principal=BILLING.principal)[0]] == [
            "credit_requested"
        ]
        assert len(q.audit(role="account_admin")[0]) == 1
        assert len(q.audit(event_type="relationship_requested")[0]) == 2
        assert len(q.audit(recorded_from=NOW - timedelta(minutes=5))[0]) == 5
        assert q.audit(recorded_to=NOW - timedelta(minutes=5))[0] == []

    def test_cursor_pages_newest_first_and_oldest_first(self, app, read_side):
        given_two_migrations(app)
        read_side.catch_up()
        q = read_side.queries
        everything = [r["position"] for r in q.audit()[0]]

        for order, expected in (("asc", everything), ("desc", everything[::-1])):
            seen, after = [], None
            while True:
                page, after = q.audit(order=order, limit=2, after=after)
                seen += [r["position"] for r in page]
                if after is None:
                    break
            assert seen == expected


class TestGivenAnExport:
    def test_csv_has_a_header_and_one_line_per_row(self, app, read_side):
        given_two_migrations(app)
        read_side.catch_up()
        text = "".join(read_side.queries.export("csv", partner_id="fabrikam"))
        table = list(csv.DictReader(io.StringIO(text)))
        assert len(table) == 4
        assert json.loads(table[2]["payload"]) == {"text": "kick-off: «café» ✓"}

    def test_jsonl_lines_equal_the_query_rows(self, app, read_side):
        given_two_migrations(app)
        read_side.catch_up()
        q = read_side.queries
        lines = [json.loads(line) for line in q.export("jsonl")]
        assert lines == q.audit()[0]

    def test_export_is_a_lazy_generator_paging_by_cursor(self, app, read_side, monkeypatch):
        for i in range(7):
            request(app, f"t{i}.onmicrosoft.com")
        read_side.catch_up()
        monkeypatch.setattr("projections.queries.PAGE", 3)
        calls = []
        original = read_side.queries.audit

        def spy(**kwargs):
            calls.append(kwargs)
            return original(**kwargs)

        monkeypatch.setattr(read_side.queries, "audit", spy)
        stream = read_side.queries.export("jsonl")
        next(stream)
        assert len(calls) == 1  # nothing read beyond the first page yet
        assert len(list(stream)) == 6
        assert all(c["limit"] == 3 for c in calls)
