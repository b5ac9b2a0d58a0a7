"""Given/when/then specifications of the Migration aggregate (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.context import Context
from domain.errors import Conflict, DomainError, InvalidInput, NotFound, NotPermitted, RuleViolated
from domain.state import replay
from tests.factories import (
    ADMIN,
    BILLING,
    SALES,
    TODAY,
    accepted,
    at,
    given,
    provisioned,
    recorded,
    requested,
    with_original,
)


def refused(code: str, kind: type[DomainError] = DomainError):
    """Then: the command is refused with this stable code."""
    return pytest.raises(kind, match=rf"^{code}:")


class TestWhenPartnerRequestsRelationship:
    def test_records_the_request_with_metadata(self):
        m = requested()
        [event] = m.collect_events()
        assert type(event).TOPIC == "csp_tracker.migration:relationship_requested"
        assert (event.principal, event.role) == (SALES.principal, "sales_agent")
        assert event.correlation_id == SALES.correlation_id
        assert event.occurred_at == event.timestamp  # business time defaults to recorded time
        assert m.state.stage == "invited"
        assert m.state.tenant_id == "contoso.onmicrosoft.com"

    def test_refuses_a_customer_in_another_region(self):
        with refused("region_mismatch", RuleViolated):
            requested(region="north_america")

    def test_refuses_a_billing_agent(self):
        from domain.migration import Migration

        with refused("role_not_permitted", NotPermitted):
            Migration.request_relationship(
                BILLING,
                partner_id="p",
                partner_region="europe",
                tenant_id="t",
                customer_name="C",
                customer_region="europe",
                channel="direct",
                multi_partner=False,
            )

    def test_refuses_an_unknown_channel(self):
        from domain.migration import Migration

        with refused("invalid_channel", InvalidInput):
            Migration.request_relationship(
                SALES,
                partner_id="p",
                partner_region="europe",
                tenant_id="t",
                customer_name="C",
                customer_region="europe",
                channel="fax",
                multi_partner=False,
            )

    def test_keeps_the_business_time_given(self):
        when = datetime(2026, 11, 2, 9, tzinfo=UTC)
        from domain.migration import Migration

        m = Migration.request_relationship(
            Context("s", "sales_agent", occurred_at=when),
            partner_id="p",
            partner_region="europe",
            tenant_id="t",
            customer_name="C",
            customer_region="europe",
            channel="other_partner",
            multi_partner=True,
        )
        assert m.collect_events()[0].occurred_at == when

    def test_refuses_a_business_time_in_the_future(self):
        with refused("occurred_in_future", InvalidInput):
            requested().add_note(at(2), text="from the future")


class TestWhenRecordingOriginals:
    def test_records_an_original_that_renews_by_default(self):
        m = with_original(given(requested()))
        assert recorded(m) == ["original_subscription_recorded"]
        assert m.state.originals["orig-1"].auto_renew is True
        assert m.state.original_licenses == 25

    @pytest.mark.parametrize("licenses", [0, -3])
    def test_refuses_fewer_than_one_license(self, licenses):
        with refused("invalid_licenses", InvalidInput):
            with_original(requested(), licenses=licenses)

    def test_refuses_a_duplicate_subscription_id(self):
        m = with_original(requested())
        with refused("duplicate_subscription", Conflict):
            with_original(m)

    def test_refuses_unknown_purchase_route(self):
        with refused("invalid_purchased_via", InvalidInput):
            with_original(requested(), via="shop")


class TestWhenCustomerAccepts:
    def test_moves_to_accepted(self):
        m = accepted(with_original(requested()))
        assert m.state.stage == "accepted"
        assert m.state.accepted_by == "ga@contoso.example"

    def test_refuses_a_second_acceptance(self):
        with refused("already_accepted", Conflict):
            accepted(accepted(requested()))


class TestWhenProvisioning:
    def test_refuses_before_acceptance(self):
        with refused("not_accepted", RuleViolated):
            provisioned(with_original(requested()))

    def test_refuses_an_unknown_original(self):
        with refused("unknown_subscription", NotFound):
            provisioned(accepted(requested()), replaces="nope")

    def test_refuses_an_original_already_replaced(self):
        m = provisioned(accepted(with_original(requested())))
        with refused("already_replaced", Conflict):
            provisioned(m, sub="csp-2")

    def test_same_offer_needs_no_reassignment(self):
        m = provisioned(accepted(with_original(requested())))
        assert m.state.replacements["csp-1"].reassignment_pending is False
        assert m.state.stage == "provisioned"

    def test_another_offer_needs_reassignment(self):
        m = provisioned(accepted(with_original(requested())), offer="M365_E3")
        assert m.state.replacements["csp-1"].reassignment_pending is True

    def test_refuses_the_retired_offer_itself(self):
        m = accepted(with_original(requested()))
        m.retire_offer(ADMIN, subscription_id="orig-1")
        with refused("offer_retired", RuleViolated):
            provisioned(m)

    def test_accepts_an_equivalent_offer_for_a_retired_one(self):
        m = accepted(with_original(requested()))
        m.retire_offer(ADMIN, subscription_id="orig-1")
        provisioned(m, offer="M365_BUSINESS_STANDARD")
        assert m.state.originals["orig-1"].replaced_by == "csp-1"

    def test_partial_provisioning_is_its_own_stage(self):
        m = accepted(with_original(with_original(requested()), "orig-2"))
        provisioned(m)
        assert m.state.stage == "provisioning"

    def test_refuses_a_billing_agent(self):
        m = accepted(with_original(requested()))
        with refused("role_not_permitted", NotPermitted):
            m.provision_subscription(
                BILLING,
                subscription_id="c",
                replaces="orig-1",
                offer_id="x",
                offer_name="x",
                licenses=1,
            )


class TestWhenLicensesChange:
    def test_a_smaller_replacement_is_a_shortfall(self):
        m = provisioned(accepted(with_original(requested())), licenses=20)
        assert "license_shortfall" in _risks(m)

    def test_topping_up_clears_the_shortfall(self):
        m = provisioned(accepted(with_original(requested())), licenses=20)
        m.change_licenses(ADMIN, subscription_id="csp-1", licenses=25)
        assert "license_shortfall" not in _risks(m)

    def test_a_reduction_within_seven_days_is_no_risk(self):
        m = provisioned(accepted(with_original(requested())), licenses=30)
        m.change_licenses(ADMIN, subscription_id="csp-1", licenses=25)
        assert "late_license_reduction" not in _risks(m)

    def test_a_reduction_after_seven_days_is_flagged_not_refused(self):
        m = accepted(with_original(requested()))
        m.provision_subscription(
            at(-10),
            subscription_id="csp-1",
            replaces="orig-1",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=30,
        )
        m.change_licenses(ADMIN, subscription_id="csp-1", licenses=25)
        assert "late_license_reduction" in _risks(m)

    def test_refuses_changing_an_unknown_replacement(self):
        with refused("unknown_subscription", NotFound):
            accepted(requested()).change_licenses(ADMIN, subscription_id="x", licenses=3)

    def test_refuses_a_reassignment_that_is_not_pending(self):
        m = provisioned(accepted(with_original(requested())))
        with refused("reassignment_not_pending", Conflict):
            m.reassign_licenses(ADMIN, subscription_id="csp-1")


class TestWhenOriginalEnds:
    def test_expiry_needs_auto_renew_off(self):
        m = provisioned(accepted(with_original(requested())))
        with refused("auto_renew_on", RuleViolated):
            m.record_expiry(ADMIN, subscription_id="orig-1")

    def test_expiry_after_replacement_completes_the_migration(self):
        m = given(provisioned(accepted(with_original(requested()))))
        m.disable_auto_renew(ADMIN, subscription_id="orig-1")
        m.record_expiry(ADMIN, subscription_id="orig-1")
        assert recorded(m) == [
            "original_auto_renew_disabled",
            "original_subscription_expired",
            "migration_completed",
        ]
        assert m.state.stage == "completed"

    def test_completion_is_recorded_by_the_system_with_the_same_correlation(self):
        m = given(provisioned(accepted(with_original(requested()))))
        ctx = Context("bob", "sales_agent")
        m.record_cancellation(ctx, subscription_id="orig-1", cancelled_by="customer")
        completed = m.collect_events()[-1]
        assert (completed.principal, completed.role) == ("csp-tracker", "system")
        assert completed.correlation_id == ctx.correlation_id

    def test_no_completion_while_a_reassignment_is_pending(self):
        m = provisioned(accepted(with_original(requested())), offer="M365_E3")
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="partner")
        assert m.state.stage == "provisioned"
        m.reassign_licenses(ADMIN, subscription_id="csp-1")
        assert m.state.stage == "completed"

    def test_no_completion_with_a_license_shortfall(self):
        m = provisioned(accepted(with_original(requested())), licenses=10)
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="partner")
        assert m.state.stage != "completed"
        m.change_licenses(ADMIN, subscription_id="csp-1", licenses=25)
        assert m.state.stage == "completed"

    def test_cancelling_before_replacement_is_flagged(self):
        m = accepted(with_original(requested()))
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")
        assert "cancelled_before_replacement" in _risks(m)

    def test_cancelling_long_before_term_end_is_flagged(self):
        m = with_original(requested(), term_end=TODAY + timedelta(days=200))
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")
        assert "early_cancellation" in _risks(m)

    def test_cancelling_near_term_end_is_not_early(self):
        m = with_original(requested(), term_end=TODAY + timedelta(days=10))
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")
        assert "early_cancellation" not in _risks(m)

    def test_an_eligible_cancelled_original_without_credit_is_flagged(self):
        m = with_original(requested())
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")
        assert "credit_not_requested" in _risks(m)
        m.request_credit(BILLING, subscription_id="orig-1", requested_by="customer")
        assert "credit_not_requested" not in _risks(m)

    def test_refuses_ending_an_original_twice(self):
        m = with_original(requested())
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")
        with refused("subscription_ended", Conflict):
            m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")


class TestWhenTimePasses:
    """Flags that depend on `now` are computed from stored dates, never frozen."""

    def test_an_unreplaced_original_ending_soon_is_flagged(self):
        m = with_original(requested(), term_end=TODAY + timedelta(days=20))
        assert {"expiring_unreplaced", "auto_renew_on"} <= set(_risks(m))
        assert "expiring_unreplaced" not in _risks(m, now_days=-30)

    def test_an_expired_unreplaced_original_is_in_grace_then_data_loss(self):
        m = with_original(requested(), term_end=TODAY - timedelta(days=1), auto_renew=False)
        m.record_expiry(ADMIN, subscription_id="orig-1")
        assert "grace_period" in _risks(m)
        assert m.state.originals["orig-1"].status == "expired"
        from domain.rules import deadlines

        [deadline] = deadlines(m.state)
        assert deadline["date"] == (TODAY + timedelta(days=29)).isoformat()
        assert "data_loss" in _risks(m, now_days=31)
        assert "grace_period" not in _risks(m, now_days=31)


class TestWhenAskingForACredit:
    def test_refuses_an_original_not_bought_in_the_admin_portal(self):
        m = with_original(requested(), via="other_partner")
        with refused("credit_not_eligible", RuleViolated):
            m.request_credit(BILLING, subscription_id="orig-1", requested_by="customer")

    def test_refuses_the_partner_without_admin_access(self):
        m = with_original(requested())
        with refused("delegated_admin_required", RuleViolated):
            m.request_credit(BILLING, subscription_id="orig-1", requested_by="partner")

    def test_lets_the_partner_ask_with_gdap(self):
        m = with_original(requested())
        m.grant_admin_access(ADMIN, kind="gdap", expires_at=datetime.now(UTC) + timedelta(days=90))
        m.request_credit(BILLING, subscription_id="orig-1", requested_by="partner")
        assert m.state.originals["orig-1"].credit == "requested"

    def test_refuses_the_partner_once_gdap_expired(self):
        m = with_original(requested())
        m.grant_admin_access(
            at(-100), kind="gdap", expires_at=datetime.now(UTC) - timedelta(days=1)
        )
        with refused("delegated_admin_required", RuleViolated):
            m.request_credit(BILLING, subscription_id="orig-1", requested_by="partner")

    def test_refuses_the_partner_after_access_removed(self):
        m = with_original(requested())
        m.grant_admin_access(ADMIN, kind="dap")
        m.remove_admin_access(ADMIN)
        with refused("delegated_admin_required", RuleViolated):
            m.request_credit(BILLING, subscription_id="orig-1", requested_by="partner")

    def test_refuses_a_sales_agent(self):
        m = with_original(requested())
        with refused("role_not_permitted", NotPermitted):
            m.request_credit(SALES, subscription_id="orig-1", requested_by="customer")

    def test_refuses_gdap_longer_than_730_days(self):
        with refused("invalid_expires_at", InvalidInput):
            requested().grant_admin_access(
                ADMIN, kind="gdap", expires_at=datetime.now(UTC) + timedelta(days=731)
            )

    def test_a_granted_credit_keeps_amount_and_currency(self):
        m = with_original(requested())
        m.request_credit(BILLING, subscription_id="orig-1", requested_by="customer")
        m.resolve_credit(
            BILLING,
            subscription_id="orig-1",
            outcome="granted",
            amount=Decimal("120.00"),
            currency="eur",
        )
        original = m.state.originals["orig-1"]
        assert (original.credit, original.credit_amount, original.credit_currency) == (
            "granted",
            Decimal("120.00"),
            "EUR",
        )

    def test_refuses_resolving_a_credit_never_requested(self):
        with refused("credit_not_requested", Conflict):
            with_original(requested()).resolve_credit(
                BILLING, subscription_id="orig-1", outcome="denied"
            )

    def test_refuses_a_granted_credit_without_amount(self):
        m = with_original(requested())
        m.request_credit(BILLING, subscription_id="orig-1", requested_by="customer")
        with refused("invalid_amount", InvalidInput):
            m.resolve_credit(BILLING, subscription_id="orig-1", outcome="granted")


class TestWhenClosed:
    @pytest.mark.parametrize("close", ["abandon", "complete"])
    def test_refuses_further_migration_steps(self, close):
        m = with_original(requested())
        if close == "abandon":
            m.abandon(ADMIN, reason="customer chose another partner")
        else:
            provisioned(accepted(m))
            m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="partner")
        with refused("migration_closed", Conflict):
            with_original(m, "orig-9")
        with refused("migration_closed", Conflict):
            m.abandon(ADMIN, reason="again")

    def test_refuses_even_notes_after_abandonment(self):
        m = requested()
        m.abandon(ADMIN, reason="customer chose another partner")
        with refused("migration_closed", Conflict):
            m.add_note(ADMIN, text="too late")

    def test_the_credit_tail_may_follow_the_cancellation_that_completed_it(self):
        m = provisioned(accepted(with_original(requested())))
        m.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")
        assert m.state.stage == "completed"
        assert "credit_not_requested" in _risks(m)
        m.request_credit(BILLING, subscription_id="orig-1", requested_by="customer")
        m.resolve_credit(BILLING, subscription_id="orig-1", outcome="denied")
        m.add_note(ADMIN, text="billing support declined")
        assert m.state.stage == "completed"
        assert "credit_not_requested" not in _risks(m)

    def test_notes_are_kept_for_the_audit_trail(self):
        m = given(requested())
        m.add_note(BILLING, text="called the customer")
        assert recorded(m) == ["note_added"]

    def test_refuses_an_empty_note(self):
        with refused("invalid_text", InvalidInput):
            requested().add_note(ADMIN, text="  ")


class TestReplay:
    def test_replaying_the_events_gives_the_live_state(self):
        m = requested()
        events = list(m.collect_events())
        with_original(m)
        accepted(m)
        provisioned(m, licenses=20)
        m.change_licenses(ADMIN, subscription_id="csp-1", licenses=25)
        events += m.collect_events()
        assert replay(events) == m.state


def _risks(m, now_days: float = 0) -> list[str]:
    from domain.rules import risks

    return risks(m.state, datetime.now(UTC) + timedelta(days=now_days))


class TestCopies:
    def test_a_deep_copy_shares_no_mutable_part_with_the_original(self):
        import copy

        m = provisioned(accepted(with_original(requested())))
        m.grant_admin_access(ADMIN, kind="dap")
        twin = copy.deepcopy(m)
        twin.change_licenses(ADMIN, subscription_id="csp-1", licenses=30)
        twin.record_cancellation(ADMIN, subscription_id="orig-1", cancelled_by="customer")
        assert m.state.originals["orig-1"].status == "active"
        assert m.state.replacements["csp-1"].licenses == 25
        assert m.state.stage == "provisioned" and twin.state.stage == "completed"
        assert copy.deepcopy(m.state) == m.state
