"""Business time orders the facts (rule 3); credits and admin access over time (rule 6);
abandonment keeps the truth visible (rule 10); flags that depend on now."""

from __future__ import annotations

import copy
from decimal import Decimal

from domain.rules import risks
from domain.state import MigrationState
from tests.unit.spec import (
    BILLING,
    CUSTOMER,
    NOW,
    SALES,
    accepted,
    day,
    days,
    fact,
    gdap,
    given,
    on,
    original,
    provisioned,
    requested,
)


class TestBusinessTime:
    def test_a_cancellation_before_the_replacement_is_flagged_even_if_recorded_later(self):
        # Recorded in this order: provisioned (10 days ago), then the cancellation, which
        # happened 20 days ago: before the replacement existed.
        state = given(
            requested(),
            original(),
            accepted(at=days(-30)),
            provisioned(at=days(-10)),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-20)),
        ).state
        assert "cancelled_before_replacement" in risks(state, NOW)

    def test_a_cancellation_after_the_replacement_is_not_flagged_even_if_recorded_first(self):
        state = given(
            requested(),
            original(),
            accepted(at=days(-30)),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-5)),
            provisioned(at=days(-10)),
        ).state
        assert "cancelled_before_replacement" not in risks(state, NOW)

    def test_cancelling_an_unreplaced_original_is_flagged(self):
        state = given(
            requested(),
            original(),
            accepted(),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-1)),
        ).state
        assert "cancelled_before_replacement" in risks(state, NOW)

    def test_completion_is_dated_at_the_latest_business_time_that_completed_it(self):
        # The expiry is back-dated to 3 days ago, but the provisioning happened yesterday:
        # the migration completed yesterday.
        migration = given(
            requested(),
            original(term_end=day(-5), auto_renew=False),
            accepted(at=days(-40)),
            provisioned(at=days(-1)),
        )
        migration.when("original_subscription_expired", subscription_id="orig-1", at=days(-3)).then(
            fact("original_subscription_expired", at=days(-3)),
            fact("migration_completed", at=days(-1)),
        )

    def test_completion_is_recorded_by_the_system_with_the_same_correlation(self):
        outcome = given(requested(), original(), accepted(), provisioned()).when(
            "original_subscription_cancelled",
            by=SALES,
            subscription_id="orig-1",
            cancelled_by="customer",
        )
        completed = outcome.decided[-1]
        assert completed.type == "migration_completed"
        assert (completed.values["principal"], completed.values["role"]) == (
            "csp-tracker",
            "system",
        )
        assert completed.values["correlation_id"] == "corr-1"

    def test_refuses_a_provisioning_back_dated_before_the_acceptance(self):
        given(requested(), original(), accepted(at=days(-10))).when(
            "subscription_provisioned",
            at=days(-12),
            subscription_id="csp-1",
            replaces="orig-1",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=25,
        ).then_refused("not_accepted")

    def test_refuses_a_provisioning_before_any_acceptance(self):
        given(requested(), original()).when(
            "subscription_provisioned",
            subscription_id="csp-1",
            replaces="orig-1",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=25,
        ).then_refused("not_accepted")


class TestCredits:
    cancelled = (
        requested(),
        original(),
        on("original_subscription_cancelled", cancelled_by="customer", at=days(-3)),
    )

    def test_refuses_an_original_not_bought_in_the_admin_portal(self):
        given(requested(), original(via="other_partner")).when(
            "credit_requested", by=BILLING, subscription_id="orig-1", requested_by="customer"
        ).then_refused("credit_not_eligible")

    def test_refuses_the_partner_without_admin_access(self):
        given(*self.cancelled).when(
            "credit_requested", by=BILLING, subscription_id="orig-1", requested_by="partner"
        ).then_refused("delegated_admin_required")

    def test_the_partner_may_ask_while_any_relationship_is_live(self):
        # gdap-1 has expired, gdap-2 is live.
        migration = given(
            *self.cancelled,
            gdap("gdap-1", expires=days(-1), at=days(-300)),
            gdap("gdap-2", expires=days(100), at=days(-20)),
        )
        migration.when(
            "credit_requested", by=BILLING, subscription_id="orig-1", requested_by="partner"
        ).then(fact("credit_requested", requested_by="partner"))

    def test_access_is_judged_at_the_request_s_business_time(self):
        migration = given(*self.cancelled, gdap("gdap-1", expires=days(-1), at=days(-300)))
        migration.when(
            "credit_requested", by=BILLING, subscription_id="orig-1", requested_by="partner"
        ).then_refused("delegated_admin_required")
        migration.when(
            "credit_requested",
            by=BILLING,
            at=days(-2),
            subscription_id="orig-1",
            requested_by="partner",
        ).then(fact("credit_requested", at=days(-2)))

    def test_refuses_the_partner_after_access_removed(self):
        given(
            *self.cancelled,
            gdap(at=days(-20)),
            fact("admin_access_removed", days(-10), relationship_id=None),
        ).when(
            "credit_requested", by=BILLING, subscription_id="orig-1", requested_by="partner"
        ).then_refused("delegated_admin_required")

    def test_refuses_a_sales_agent(self):
        given(*self.cancelled).when(
            "credit_requested", by=SALES, subscription_id="orig-1", requested_by="customer"
        ).then_refused("role_not_permitted")

    def test_a_granted_credit_keeps_amount_and_currency(self):
        outcome = given(*self.cancelled, on("credit_requested", requested_by="customer")).when(
            "credit_resolved",
            by=BILLING,
            subscription_id="orig-1",
            outcome="granted",
            amount=Decimal("120.00"),
            currency="eur",
        )
        outcome.then(fact("credit_resolved", amount=Decimal("120.00"), currency="EUR"))
        assert outcome.state.credits_granted == {"EUR": Decimal("120.00")}

    def test_refuses_resolving_a_credit_never_requested(self):
        given(*self.cancelled).when(
            "credit_resolved", by=BILLING, subscription_id="orig-1", outcome="denied"
        ).then_refused("credit_not_requested")

    def test_refuses_a_granted_credit_without_amount(self):
        given(*self.cancelled, on("credit_requested", requested_by="customer")).when(
            "credit_resolved", by=BILLING, subscription_id="orig-1", outcome="granted"
        ).then_refused("invalid_amount")

    def test_the_credit_tail_may_follow_the_cancellation_that_completed_it(self):
        completed = given(
            requested(),
            original(),
            accepted(),
            provisioned(),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-2)),
            fact("migration_completed", at=days(-2)),
        )
        assert completed.state.stage == "completed"
        assert "credit_not_requested" in risks(completed.state, NOW)
        completed.when(
            "credit_requested", by=CUSTOMER, subscription_id="orig-1", requested_by="customer"
        ).then(fact("credit_requested"))
        completed.when("note_added", text="billing support called").then(fact("note_added"))


class TestAdminAccessOverTime:
    def test_a_gdap_expiring_within_30_days_is_flagged(self):
        state = given(requested(), gdap(expires=days(20), at=days(-700))).state
        assert "admin_access_expiring" in risks(state, NOW)
        assert "admin_access_expiring" not in risks(state, days(-20))

    def test_no_flag_while_another_relationship_outlasts_it(self):
        state = given(
            requested(), gdap("a", expires=days(20), at=days(-700)), gdap("b", expires=days(200))
        ).state
        assert "admin_access_expiring" not in risks(state, NOW)

    def test_no_flag_after_the_access_ended(self):
        state = given(requested(), gdap(expires=days(-2), at=days(-700))).state
        assert "admin_access_expiring" not in risks(state, NOW)


class TestWhenTimePasses:
    def test_an_unreplaced_original_ending_soon_is_flagged(self):
        state = given(requested(), original(term_end=day(20))).state
        assert {"expiring_unreplaced", "auto_renew_on"} <= set(risks(state, NOW))
        assert "expiring_unreplaced" not in risks(state, days(-30))

    def test_flags_of_the_future_are_not_judged_now(self):
        state = given(requested(), original(term_end=day(60))).state
        assert risks(state, NOW) == []


class TestAbandonment:
    """Rule 10: an abandoned migration keeps the flags that are still true."""

    def test_an_expired_unreplaced_original_keeps_its_flags(self):
        state = given(
            requested(),
            original(term_end=day(-40), auto_renew=False),
            on("original_subscription_expired", at=days(-40)),
            fact("migration_abandoned", days(-35), reason="customer went elsewhere"),
        ).state
        assert state.stage == "abandoned"
        assert "access_lost" in risks(state, NOW)

    def test_a_live_original_next_to_a_live_replacement_is_double_billing(self):
        state = given(
            requested(),
            original(),
            accepted(),
            provisioned(),
            fact("migration_abandoned", days(-1), reason="customer changed their mind"),
        ).state
        assert "double_billing" in risks(state, NOW)

    def test_an_open_migration_with_both_live_is_not_double_billing(self):
        state = given(requested(), original(), accepted(), provisioned()).state
        assert "double_billing" not in risks(state, NOW)

    def test_an_abandoned_migration_raises_no_timed_flags_of_open_work(self):
        state = given(
            requested(),
            original(term_end=day(5)),
            fact("migration_abandoned", days(-1), reason="r"),
        ).state
        assert risks(state, NOW) == []


class TestReplay:
    def test_replaying_the_events_gives_the_state_and_survives_a_round_trip(self):
        migration = given(
            requested(),
            original(),
            original("orig-2", licenses=5, offer="EMS_E3"),
            accepted(),
            gdap(),
            provisioned(licenses=20, at=days(-3)),
            fact("licenses_changed", days(-2), subscription_id="csp-1", licenses=25),
        )
        state = migration.state
        assert MigrationState.from_dict(state.to_dict()) == state
        assert copy.deepcopy(state) == state

    def test_a_deep_copy_shares_no_mutable_part_with_the_original(self):
        state = given(requested(), original(), accepted(), provisioned(), gdap()).state
        twin = copy.deepcopy(state)
        twin.originals["orig-1"].status = "cancelled"
        twin.replacements["csp-1"].licenses = 3
        twin.admin_access["gdap-1"].removed_at = NOW
        assert state.originals["orig-1"].status == "active"
        assert state.replacements["csp-1"].licenses == 25
        assert state.admin_access["gdap-1"].removed_at is None

    def test_a_deep_copy_of_the_aggregate_shares_only_immutable_parts(self):
        """The aggregate cache hands each command a copy (Migration.__deepcopy__)."""
        from datetime import datetime
        from uuid import UUID

        from tests.factories import ADMIN, decided
        from tests.factories import requested as new_migration

        migration = decided(new_migration(), ADMIN, "note_added", text="first")
        twin = copy.deepcopy(migration)
        assert twin is not migration and type(twin) is type(migration)
        assert vars(twin).keys() == vars(migration).keys()
        assert twin.state == migration.state and twin.state is not migration.state
        assert twin.pending_events == migration.pending_events
        assert twin.pending_events[0] is not migration.pending_events[0]
        shared = {k: v for k, v in vars(migration).items() if k not in ("state", "_pending_events")}
        assert shared, "id, version, times and stream link"
        for name, value in shared.items():
            assert isinstance(value, UUID | int | datetime | str | None), name
            assert getattr(twin, name) == value
        twin.state.notes = 99
        twin.collect_events()
        assert migration.state.notes == 1
        assert len(migration.pending_events) == 2


class TestDeadlines:
    """Every dated obligation of a migration, soonest first."""

    def test_each_kind_of_obligation_is_dated(self):
        from domain.rules import deadlines

        state = given(
            requested(),
            original(term_end=day(40)),
            original("orig-2", term_end=day(-20), auto_renew=False),
            on("original_subscription_expired", "orig-2", at=days(-20)),
            accepted(),
            gdap("rel-1", expires=days(25)),
            provisioned(licenses=25, at=days(-3)),
            on("credit_requested", requested_by="customer", at=days(-2)),
        ).state
        kinds = {(d["kind"], d["date"]) for d in deadlines(state)}
        assert kinds == {
            ("auto_renew_off_by", day(40).isoformat()),
            ("access_lost", day(10).isoformat()),
            ("data_deleted", day(100).isoformat()),
            ("gdap_expires", day(25).isoformat()),
            ("reduction_window_closes", day(4).isoformat()),
            ("credit_follow_up", day(12).isoformat()),
        }
        dates = [d["date"] for d in deadlines(state)]
        assert dates == sorted(dates)
        assert all(d["what"] for d in deadlines(state))
