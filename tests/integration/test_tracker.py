"""The tracker application on a real store: SQLite and PostgreSQL (see conftest.store_env)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain import events
from domain.application import Tracker
from domain.commands import Command
from domain.errors import Conflict, InvalidInput, NotFound, RuleViolated, VersionConflict
from domain.migration import event_type
from domain.partner import Partner
from tests.factories import ADMIN, BILLING, SALES, decided, record, start

TERM_END = date(2027, 1, 31)


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    tracker.register_partner("northwind", "Northwind CSP", "north_america")
    return tracker


def request(app: Tracker, tenant: str = "contoso.onmicrosoft.com", partner: str = "fabrikam"):
    return start(
        app,
        SALES,
        partner_id=partner,
        tenant_id=tenant,
        customer_name="Contoso Ltd",
        customer_region="europe",
        channel="direct",
    ).migration.id


def record_original(app: Tracker, mid, sub: str = "orig-1", licenses: int = 25):
    return record(
        app,
        "original_subscription_recorded",
        mid,
        SALES,
        subscription_id=sub,
        offer_id="O365_E3",
        offer_name="Office 365 E3",
        licenses=licenses,
        term_end=TERM_END,
        purchased_via="m365_admin_portal",
        billing_cycle="annual",
    )


def stored_count(app: Tracker) -> int:
    return app.recorder.max_notification_id() or 0


class TestGivenAStoredMigration:
    def test_reloading_gives_the_same_state_with_dates_and_money_intact(self, app, store_env):
        mid = request(app)
        record_original(app, mid)
        record(
            app, "credit_requested", mid, BILLING, subscription_id="orig-1", requested_by="customer"
        )
        live = record(
            app,
            "credit_resolved",
            mid,
            BILLING,
            subscription_id="orig-1",
            outcome="granted",
            amount=Decimal("120.00"),
            currency="EUR",
        ).migration
        fresh = Tracker(env=store_env)  # a new process's view of the same store
        try:
            again = fresh.get(mid)
        finally:
            fresh.close()
        assert again.state == live.state
        assert again.state.originals["orig-1"].term_end == TERM_END
        assert again.state.originals["orig-1"].credit_amount == Decimal("120.00")

    def test_events_are_stored_under_their_explicit_topics(self, app):
        mid = request(app)
        record_original(app, mid)
        topics = [e.topic for e in app.recorder.select_events(mid)]
        assert topics == [
            "csp_tracker.migration:relationship_requested",
            "csp_tracker.migration:original_subscription_recorded",
        ]

    def test_every_event_carries_who_when_and_correlation(self, app):
        mid = request(app)
        record_original(app, mid)
        for event in app.history(mid):
            assert event.principal and event.role and event.correlation_id
            assert event.timestamp.tzinfo is not None and event.occurred_at.tzinfo is not None

    def test_time_travel_replays_only_events_recorded_by_then(self, app):
        mid = request(app)
        first = record_original(app, mid).events[0].timestamp
        record_original(app, mid, "orig-2")
        assert set(app.get(mid, as_of=first).state.originals) == {"orig-1"}
        assert app.get(mid, as_of=first).version == 2
        assert set(app.get(mid).state.originals) == {"orig-1", "orig-2"}

    def test_time_travel_before_creation_is_not_found(self, app):
        mid = request(app)
        with pytest.raises(NotFound, match="migration_not_found"):
            app.get(mid, as_of=datetime(2020, 1, 1, tzinfo=UTC))

    def test_unknown_ids_are_not_found(self, app):
        with pytest.raises(NotFound, match="migration_not_found"):
            app.get(uuid4())
        with pytest.raises(NotFound, match="migration_not_found"):
            app.get(Partner.key("fabrikam"))  # another aggregate's id is not a migration


class TestWhenRequestIsRefused:
    def test_a_region_mismatch_stores_nothing(self, app):
        before = stored_count(app)
        with pytest.raises(RuleViolated, match="region_mismatch"):
            request(app, partner="northwind")
        assert stored_count(app) == before

    def test_an_unknown_partner_is_not_found(self, app):
        with pytest.raises(NotFound, match="unknown_partner"):
            request(app, partner="nobody")

    def test_registering_a_partner_twice_conflicts(self, app):
        with pytest.raises(Conflict, match="partner_exists"):
            app.register_partner("fabrikam", "Again", "europe")


class TestOneOpenMigrationPerPartnerAndTenant:
    def test_a_second_request_names_the_open_migration(self, app):
        mid = request(app)
        before = stored_count(app)
        with pytest.raises(Conflict, match="migration_open") as refused:
            request(app, tenant="CONTOSO.onmicrosoft.com")
        assert refused.value.details["migration_id"] == str(mid)
        assert stored_count(app) == before

    def test_another_partner_may_migrate_the_same_tenant(self, app):
        app.register_partner("adatum", "Adatum", "europe")
        assert request(app) != request(app, partner="adatum")

    def test_after_abandonment_a_new_migration_may_start(self, app):
        mid = request(app)
        record(app, "migration_abandoned", mid, ADMIN, reason="customer paused")
        assert request(app) != mid

    def test_after_completion_a_new_migration_may_start(self, app):
        mid = request(app)
        record_original(app, mid)
        record(app, "invitation_accepted", mid, ADMIN, accepted_by="ga@contoso.example")
        record(
            app,
            "subscription_provisioned",
            mid,
            SALES,
            subscription_id="csp-1",
            replaces="orig-1",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=25,
        )
        done = record(
            app,
            "original_subscription_cancelled",
            mid,
            ADMIN,
            subscription_id="orig-1",
            cancelled_by="customer",
        )
        assert [event_type(e) for e in done.events] == [
            "original_subscription_cancelled",
            "migration_completed",
        ]
        assert request(app) != mid

    def test_concurrent_requests_open_exactly_one(self, app):
        outcomes: list[object] = []
        barrier = threading.Barrier(4)

        def attempt():
            barrier.wait()
            try:
                outcomes.append(request(app))
            except Conflict as e:
                outcomes.append(e.code)

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        opened = [o for o in outcomes if not isinstance(o, str)]
        assert len(opened) == 1
        assert set(outcomes) - set(opened) <= {"migration_open", "version_conflict"}


class TestConcurrency:
    def test_a_stale_expected_version_conflicts_and_stores_nothing(self, app):
        mid = request(app)
        record_original(app, mid)
        before = stored_count(app)
        with pytest.raises(VersionConflict, match="version_conflict"):
            record(app, "note_added", mid, ADMIN, text="stale", expected_version=1)
        assert stored_count(app) == before
        assert (
            record(
                app, "note_added", mid, ADMIN, text="fresh", expected_version=2
            ).migration.version
            == 3
        )

    def test_two_writers_of_one_version_cannot_both_land(self, app):
        mid = request(app)
        first, second = app.get(mid), app.get(mid)
        decided(first, ADMIN, "note_added", text="one")
        decided(second, ADMIN, "note_added", text="two")
        app.save(first)
        with pytest.raises(VersionConflict):
            app._save(second)
        assert app.get(mid).version == 2


class TestSchemaEvolution:
    def test_a_version_1_original_is_upcast_with_auto_renew_on(self, app):
        mid = request(app)
        v1_state = {
            "originator_id": mid.hex,
            "originator_version": 2,
            "timestamp": {"_type_": "datetime_iso", "_data_": datetime.now(UTC).isoformat()},
            "principal": "legacy-import",
            "role": "sales_agent",
            "occurred_at": {"_type_": "datetime_iso", "_data_": datetime.now(UTC).isoformat()},
            "correlation_id": "c-1",
            "subscription_id": "orig-1",
            "offer_id": "O365_E3",
            "offer_name": "Office 365 E3",
            "licenses": 10,
            "term_end": {"_type_": "date_iso", "_data_": "2027-01-31"},
            "purchased_via": "other_channel",
            "billing_cycle": "annual",
        }
        app.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=mid,
                    originator_version=2,
                    topic=events.OriginalSubscriptionRecorded.TOPIC,
                    state=json.dumps(v1_state).encode(),
                )
            ]
        )
        original = app.get(mid).state.originals["orig-1"]
        assert original.auto_renew is True
        assert original.term_end == date(2027, 1, 31)

    def test_new_originals_are_stored_as_version_3_with_their_offer_family(self, app):
        mid = request(app)
        record_original(app, mid)
        stored = json.loads(app.recorder.select_events(mid)[-1].state)
        assert stored["class_version"] == 3
        assert stored["family"] == "office_365_e3"


def test_recorded_time_is_utc_and_business_time_may_be_earlier(app):
    from domain.context import Context

    when = datetime.now(UTC) - timedelta(days=3)
    mid = start(
        app,
        Context("x", "sales_agent", occurred_at=when - timedelta(days=1)),
        partner_id="fabrikam",
        tenant_id="contoso.onmicrosoft.com",
        customer_name="Contoso Ltd",
        customer_region="europe",
        channel="direct",
    ).migration.id
    event = record(
        app, "note_added", mid, Context("x", "sales_agent", occurred_at=when), text="late entry"
    )
    [note] = event.events
    assert note.occurred_at == when
    assert note.timestamp.utcoffset() == timedelta(0)
    # Nothing may be dated before the relationship request itself.
    with pytest.raises(RuleViolated, match=r"^before_request:"):
        record(
            app,
            "note_added",
            mid,
            Context("x", "sales_agent", occurred_at=when - timedelta(days=2)),
            text="too early",
        )


class TestPartnerIsolation:
    def test_another_partners_migration_is_not_found_before_any_other_check(self, app):
        from domain.context import Context

        mid = request(app)
        stranger = Context("eve@northwind", "account_admin", partner_id="northwind")
        before = stored_count(app)
        with pytest.raises(NotFound, match="migration_not_found"):
            record(app, "note_added", mid, stranger, text="peek", expected_version=99)
        assert stored_count(app) == before

    def test_the_owning_partner_acts_as_usual(self, app):
        from domain.context import Context

        mid = request(app)
        owner = Context("amy@fabrikam", "account_admin", partner_id="fabrikam")
        assert record(app, "note_added", mid, owner, text="ours").migration.version == 2


class TestGivenALongMigration:
    """Snapshots every SNAPSHOT_INTERVAL events: loading and time travel start from one."""

    def test_time_travel_from_snapshots_equals_replay_from_the_start(self, app):
        from domain.application import SNAPSHOT_INTERVAL
        from domain.state import replay

        mid = request(app)
        record_original(app, mid)
        for i in range(int(SNAPSHOT_INTERVAL * 2.5)):
            record(app, "note_added", mid, ADMIN, text=f"update {i}")
        events = app.history(mid)
        assert len(list(app.snapshots.get(mid))) == 2
        for cut in (1, SNAPSHOT_INTERVAL - 1, SNAPSHOT_INTERVAL, SNAPSHOT_INTERVAL + 7, 249):
            as_of = events[cut].timestamp
            expected = [e for e in events if e.timestamp <= as_of]
            past = app.get(mid, as_of=as_of)
            assert past.version == len(expected)
            assert past.state == replay(expected)

    def test_loading_through_a_snapshot_gives_the_same_state(self, app, store_env):
        from domain.application import SNAPSHOT_INTERVAL

        mid = request(app)
        for i in range(SNAPSHOT_INTERVAL + 5):
            record(app, "note_added", mid, ADMIN, text=f"update {i}")
        fresh = Tracker(env={**store_env, "AGGREGATE_CACHE_MAXSIZE": "0"})
        try:
            assert fresh.get(mid).state == app.get(mid).state
            assert fresh.get(mid).state.notes == SNAPSHOT_INTERVAL + 5
        finally:
            fresh.close()


class TestExecuteMany:
    """Several commands of one migration: decided in order, saved in one transaction or not."""

    def test_each_command_is_decided_on_the_state_the_ones_before_it_left(self, app):
        mid = request(app)
        steps = [
            (SALES, _original()),
            (ADMIN, Command.of("invitation_accepted", accepted_by="admin@contoso.com")),
            (ADMIN, Command.of("note_added", text="both in one save")),
        ]
        before = stored_count(app)
        done = app.execute_many(mid, steps, expected_version=1)
        assert [event_type(e) for e in done.events] == [
            "original_subscription_recorded",
            "invitation_accepted",
            "note_added",
        ]
        assert [e.originator_version for e in done.events] == [2, 3, 4]
        assert [e.role for e in done.events] == ["sales_agent", "account_admin", "account_admin"]
        assert stored_count(app) == before + 3
        assert app.get(mid).version == 4

    def test_a_refusal_names_its_index_and_stores_nothing(self, app):
        mid = request(app)
        before = stored_count(app)
        steps = [
            (SALES, _original()),
            (ADMIN, Command.of("note_added", text="fine")),
            (
                SALES,
                Command.of(
                    "subscription_provisioned",
                    subscription_id="csp-1",
                    replaces="orig-1",
                    offer_id="O365_E3",
                    offer_name="Office 365 E3",
                    licenses=25,
                ),
            ),
        ]
        with pytest.raises(RuleViolated) as refused:
            app.execute_many(mid, steps)
        assert refused.value.code == "not_accepted"
        assert refused.value.details["index"] == 2
        assert stored_count(app) == before
        assert app.get(mid).version == 1

    def test_a_single_command_names_no_index(self, app):
        mid = request(app)
        with pytest.raises(RuleViolated) as refused:
            record(
                app,
                "subscription_provisioned",
                mid,
                SALES,
                subscription_id="csp-1",
                replaces="orig-1",
                offer_id="O365_E3",
                offer_name="Office 365 E3",
                licenses=25,
            )
        assert "index" not in refused.value.details

    def test_an_empty_batch_is_refused(self, app):
        mid = request(app)
        with pytest.raises(InvalidInput) as refused:
            app.execute_many(mid, [])
        assert refused.value.code == "empty_batch"

    def test_a_stale_expected_version_is_the_version_before_the_batch(self, app):
        mid = request(app)
        with pytest.raises(VersionConflict):
            app.execute_many(mid, [(ADMIN, Command.of("note_added", text="x"))], 2)
        assert app.get(mid).version == 1


def _original() -> Command:
    return Command.of(
        "original_subscription_recorded",
        subscription_id="orig-1",
        offer_id="O365_E3",
        offer_name="Office 365 E3",
        licenses=25,
        term_end=TERM_END,
        purchased_via="m365_admin_portal",
        billing_cycle="annual",
    )


class TestExecuteEach:
    """Commands for several migrations: each decided as if alone, in order; one save."""

    def test_all_are_saved_at_once_and_a_refusal_is_an_outcome(self, app, monkeypatch):
        one, two = request(app), request(app, tenant="fabrikam-two.example")
        saves = []
        save = app.save
        monkeypatch.setattr(app, "save", lambda *a, **k: saves.append(a) or save(*a, **k))
        outcomes = app.execute_each(
            [
                (one, ADMIN, Command.of("note_added", text="a")),
                (two, ADMIN, Command.of("invitation_accepted", accepted_by="x@two.example")),
                (one, ADMIN, Command.of("invitation_accepted", accepted_by="x@one.example")),
                (one, ADMIN, Command.of("invitation_accepted", accepted_by="again")),
                (uuid4(), ADMIN, Command.of("note_added", text="nowhere")),
            ]
        )
        assert len(saves) == 1
        assert [[e.originator_version for e in o] for o in outcomes[:3]] == [[2], [2], [3]]
        assert isinstance(outcomes[3], Conflict) and outcomes[3].code == "already_accepted"
        assert isinstance(outcomes[4], NotFound)
        assert (app.get(one).version, app.get(two).version) == (3, 2)

    def test_a_collision_with_another_writer_runs_them_one_by_one(self, app):
        one, two = request(app), request(app, tenant="fabrikam-two.example")
        sneaked: list[object] = []

        def decided(index, migration, events):
            if not sneaked:  # another writer stores on `one` before the save
                sneaked.append(record(app, "note_added", one, ADMIN, text="sneaked in"))
            return []

        outcomes = app.execute_each(
            [
                (one, ADMIN, Command.of("note_added", text="a")),
                (two, ADMIN, Command.of("note_added", text="b")),
            ],
            decided,
        )
        assert [[e.originator_version for e in o] for o in outcomes] == [[3], [2]]
        texts = [e.text for e in app.history(one) if hasattr(e, "text")]
        assert texts == ["sneaked in", "a"]
