"""The originals: recording, expiry and renewal (rule 4), corrections, exclusion for
multi-partner customers (rule 5), cancellation."""

from __future__ import annotations

import pytest

from domain.rules import deadlines, risks
from tests.unit.spec import (
    ADMIN,
    NOW,
    SALES,
    accepted,
    day,
    days,
    fact,
    given,
    on,
    original,
    provisioned,
    requested,
)


def record(**overrides):
    fields = {
        "subscription_id": "orig-1",
        "offer_id": "O365_E3",
        "offer_name": "Office 365 E3",
        "licenses": 25,
        "term_end": day(60),
        "purchased_via": "m365_admin_portal",
        "billing_cycle": "annual",
    }
    return given(requested()).when(
        "original_subscription_recorded", by=SALES, **{**fields, **overrides}
    )


class TestWhenRecordingOriginals:
    def test_records_an_original_that_renews_by_default_in_its_offer_family(self):
        outcome = record().then(
            fact(
                "original_subscription_recorded",
                subscription_id="orig-1",
                licenses=25,
                auto_renew=True,
                family="office_365_e3",
            )
        )
        assert outcome.state.original_licenses == 25

    def test_an_offer_outside_the_catalogue_is_a_family_of_its_own(self):
        record(offer_id="Contoso_Special ").then(
            fact(
                "original_subscription_recorded",
                offer_id="Contoso_Special",
                family="contoso_special",
            )
        )

    @pytest.mark.parametrize("licenses", [0, -3, True])
    def test_refuses_fewer_than_one_license(self, licenses):
        record(licenses=licenses).then_refused("invalid_licenses")

    def test_refuses_a_duplicate_subscription_id(self):
        given(requested(), original()).when(
            "original_subscription_recorded",
            subscription_id="orig-1",
            offer_id="x",
            offer_name="x",
            licenses=1,
            term_end=day(1),
            purchased_via="other_channel",
            billing_cycle="annual",
        ).then_refused("duplicate_subscription")

    def test_refuses_unknown_purchase_route(self):
        record(purchased_via="shop").then_refused("invalid_purchased_via")


class TestExpiry:
    """Rule 4: an expiry is the natural term end; earlier ends are cancellations."""

    def test_refuses_an_expiry_before_the_term_end(self):
        given(requested(), original(term_end=day(10), auto_renew=False)).when(
            "original_subscription_expired", subscription_id="orig-1"
        ).then_refused("before_term_end", term_end=day(10).isoformat())

    def test_an_expiry_on_the_term_end_is_recorded(self):
        given(requested(), original(term_end=day(0), auto_renew=False)).when(
            "original_subscription_expired", subscription_id="orig-1"
        ).then(fact("original_subscription_expired", subscription_id="orig-1", at=NOW))

    def test_expiry_needs_auto_renew_off(self):
        given(requested(), original(term_end=day(-1))).when(
            "original_subscription_expired", subscription_id="orig-1"
        ).then_refused("auto_renew_on")

    def test_refuses_ending_an_original_twice(self):
        given(
            requested(),
            original(),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-1)),
        ).when(
            "original_subscription_cancelled", subscription_id="orig-1", cancelled_by="customer"
        ).then_refused("subscription_ended")

    def test_the_grace_period_counts_from_the_actual_expiry(self):
        # The term ended 20 days ago, but the expiry happened (was recorded as of) 5 days ago.
        state = given(
            requested(),
            original(term_end=day(-20), auto_renew=False),
            on("original_subscription_expired", at=days(-5)),
        ).state
        [access, deletion] = deadlines(state)
        assert {k: access[k] for k in ("kind", "subscription_id", "date")} == {
            "kind": "access_lost",
            "subscription_id": "orig-1",
            "date": day(25).isoformat(),
        }
        assert deletion["kind"] == "data_deleted"
        assert deletion["date"] == day(115).isoformat()
        assert "grace_period" in risks(state, days(24))
        assert "access_lost" not in risks(state, days(24))

    def test_access_is_lost_after_30_days_and_data_after_120(self):
        state = given(
            requested(),
            original(term_end=day(-1), auto_renew=False),
            on("original_subscription_expired", at=days(-1)),
        ).state
        assert "grace_period" in risks(state, NOW)
        at_31 = risks(state, days(31))
        assert "access_lost" in at_31
        assert "grace_period" not in at_31 and "data_loss" not in at_31
        assert {"access_lost", "data_loss"} <= set(risks(state, days(121)))


class TestRenewal:
    def test_a_renewal_rolls_the_term_forward(self):
        outcome = given(requested(), original(term_end=day(-2))).when(
            "original_subscription_renewed", subscription_id="orig-1", term_end=day(363)
        )
        outcome.then(fact("original_subscription_renewed", term_end=day(363)))
        assert outcome.state.originals["orig-1"].term_end == day(363)
        assert "auto_renew_on" not in risks(outcome.state, NOW)

    def test_refuses_a_renewal_before_the_term_end(self):
        given(requested(), original(term_end=day(5))).when(
            "original_subscription_renewed", subscription_id="orig-1", term_end=day(370)
        ).then_refused("before_term_end")

    def test_refuses_a_renewal_with_auto_renew_off(self):
        given(requested(), original(term_end=day(-2), auto_renew=False)).when(
            "original_subscription_renewed", subscription_id="orig-1", term_end=day(363)
        ).then_refused("auto_renew_off")

    def test_refuses_a_term_that_does_not_move_forward(self):
        given(requested(), original(term_end=day(-2))).when(
            "original_subscription_renewed", subscription_id="orig-1", term_end=day(-2)
        ).then_refused("invalid_term_end")


class TestCorrection:
    def test_corrects_any_subset_of_fields_as_a_new_event(self):
        outcome = given(requested(), original(licenses=25)).when(
            "original_corrected",
            subscription_id="orig-1",
            licenses=30,
            reason="the customer's invoice shows 30 seats",
        )
        outcome.then(
            fact(
                "original_corrected",
                licenses=30,
                term_end=None,
                offer_id=None,
                reason="the customer's invoice shows 30 seats",
            )
        )
        assert outcome.state.originals["orig-1"].licenses == 30
        assert outcome.state.originals["orig-1"].term_end == day(60)

    def test_a_corrected_offer_moves_the_original_to_its_family(self):
        outcome = given(requested(), original()).when(
            "original_corrected", subscription_id="orig-1", offer_id="SPE_E3", reason="typo"
        )
        outcome.then(fact("original_corrected", offer_id="SPE_E3", family="microsoft_365_e3"))
        assert outcome.state.originals["orig-1"].family == "microsoft_365_e3"

    def test_refuses_a_correction_that_changes_nothing(self):
        given(requested(), original(licenses=25)).when(
            "original_corrected", subscription_id="orig-1", licenses=25, reason="r"
        ).then_refused("nothing_to_correct")

    def test_needs_a_reason(self):
        given(requested(), original()).when(
            "original_corrected", subscription_id="orig-1", licenses=3
        ).then_refused("missing_reason")

    def test_only_the_account_admin_corrects(self):
        given(requested(), original()).when(
            "original_corrected", by=SALES, subscription_id="orig-1", licenses=3, reason="r"
        ).then_refused("role_not_permitted")


class TestMultiPartner:
    """Rule 5: originals kept with the other partner are out of scope."""

    def multi(self, *facts):
        return given(requested(multi_partner=True), original(), original("orig-3"), *facts)

    def test_an_excluded_original_neither_blocks_completion_nor_raises_flags(self):
        migration = self.multi(
            on("original_excluded", "orig-3", reason="kept_with_other_partner", at=days(-55)),
            accepted(),
            provisioned(),
            on("original_auto_renew_disabled", at=days(-30)),
        )
        assert migration.state.stage == "provisioned"
        outcome = migration.when(
            "original_subscription_cancelled", subscription_id="orig-1", cancelled_by="customer"
        )
        outcome.then(fact("original_subscription_cancelled"), fact("migration_completed", at=NOW))
        assert outcome.state.original_licenses == 25
        assert "expiring_unreplaced" not in risks(migration.state, days(59))

    def test_records_the_exclusion(self):
        self.multi().when(
            "original_excluded",
            by=SALES,
            subscription_id="orig-3",
            reason="kept_with_other_partner",
        ).then(
            fact("original_excluded", subscription_id="orig-3", reason="kept_with_other_partner")
        )

    def test_only_a_multi_partner_migration_keeps_originals_with_another_partner(self):
        given(requested(), original()).when(
            "original_excluded", subscription_id="orig-1", reason="kept_with_other_partner"
        ).then_refused("not_multi_partner")

    def test_any_migration_may_drop_an_original_the_customer_gives_up(self):
        given(requested(), original()).when(
            "original_excluded", subscription_id="orig-1", reason="not_migrating"
        ).then(fact("original_excluded", reason="not_migrating"))

    def test_refuses_excluding_a_replaced_original(self):
        given(requested(), original(), accepted(), provisioned()).when(
            "original_excluded", subscription_id="orig-1", reason="not_migrating"
        ).then_refused("already_replaced")

    def test_refuses_provisioning_for_an_excluded_original(self):
        self.multi(
            on("original_excluded", "orig-3", reason="kept_with_other_partner"), accepted()
        ).when(
            "subscription_provisioned",
            subscription_id="csp-3",
            replaces="orig-3",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=25,
        ).then_refused("original_excluded")

    def test_refuses_an_unknown_reason(self):
        self.multi().when(
            "original_excluded", subscription_id="orig-3", reason="bored"
        ).then_refused("invalid_reason")


class TestCancellation:
    def test_cancelling_long_before_term_end_is_flagged(self):
        state = given(
            requested(),
            original(term_end=day(200)),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-1)),
        ).state
        assert "early_cancellation" in risks(state, NOW)

    def test_cancelling_near_term_end_is_not_early(self):
        state = given(
            requested(),
            original(term_end=day(10)),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-1)),
        ).state
        assert "early_cancellation" not in risks(state, NOW)

    def test_an_eligible_cancelled_original_without_credit_is_flagged(self):
        cancelled = (
            requested(),
            original(),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-2)),
        )
        assert "credit_not_requested" in risks(given(*cancelled).state, NOW)
        asked = on("credit_requested", requested_by="customer", at=days(-1))
        assert "credit_not_requested" not in risks(given(*cancelled, asked).state, NOW)

    def test_records_who_cancelled(self):
        given(requested(), original()).when(
            "original_subscription_cancelled",
            by=ADMIN,
            subscription_id="orig-1",
            cancelled_by="partner",
        ).then(fact("original_subscription_cancelled", cancelled_by="partner"))
