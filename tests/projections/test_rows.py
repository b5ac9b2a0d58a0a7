"""Row encoding (no store): the state a row keeps and the canonical JSON of the audit chain."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from projections import rows
from tests.factories import ADMIN, SALES, decided, requested


class TestWhenAStateIsStored:
    def test_the_row_state_is_the_domains_own_to_dict_in_the_same_order(self):
        m = requested()
        for sub in ("b", "a"):
            decided(
                m,
                SALES,
                "original_subscription_recorded",
                subscription_id=sub,
                offer_id="O365_E3",
                offer_name="E3",
                licenses=25,
                term_end=date(2027, 1, 31),
                purchased_via="m365_admin_portal",
                billing_cycle="annual",
            )
        decided(m, ADMIN, "invitation_accepted", accepted_by="ga")
        decided(
            m,
            SALES,
            "subscription_provisioned",
            subscription_id="c",
            replaces="a",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=25,
        )
        stored = json.loads(rows.migration_row(str(m.id), m.state, m.version, "x", "y")[-1])
        assert stored == m.state.to_dict()
        assert list(rows.load_state(json.dumps(stored)).originals) == ["b", "a"]


class TestCanonicalJson:
    def test_sorts_keys_and_spells_times_in_utc_and_decimals_as_text(self):
        cet = timezone(timedelta(hours=1))
        text = rows.canonical(
            {"b": Decimal("1.50"), "a": datetime(2026, 1, 1, 1, tzinfo=cet), "d": date(2026, 2, 3)}
        )
        assert text == '{"a":"2026-01-01T00:00:00.000000+00:00","b":"1.50","d":"2026-02-03"}'

    def test_times_sort_as_text_in_time_order(self):
        t = datetime(2026, 1, 1, tzinfo=UTC)
        later = t + timedelta(microseconds=1)
        assert rows.iso(t) < rows.iso(later)


class TestWhenTheProjectorBuildsAnAuditRecord:
    def test_its_fast_path_equals_the_reference_row_and_hash(self):
        m = decided(requested(), ADMIN, "note_added", text='quote " backslash \\ «ü» \u2028 tab\t')
        for position, event in enumerate(m.collect_events(), start=7):
            reference = rows.audit_row(position, event, "fabrikam", "contoso", "ab" * 32)
            record, digest = rows.audit_record(
                position,
                event,
                str(event.originator_id),
                rows.iso(event.timestamp),
                "fabrikam",
                "contoso",
                "ab" * 32,
            )
            assert record == rows.audit_tuple(reference)
            assert digest == reference["hash"]
