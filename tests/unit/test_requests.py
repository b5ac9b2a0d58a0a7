"""Steps 1 and 2: the relationship request and its acceptance, regions (rule 9), tenant
identity (rule 8), admin access as a set of relationships (rule 6), and the shared checks every
command passes (roles, visibility, business time, closed migrations)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.spec import (
    BILLING,
    CUSTOMER,
    NOW,
    SALES,
    accepted,
    days,
    fact,
    gdap,
    given,
    on,
    original,
    provisioned,
    requested,
)

GUID = "0f7e3c52-1b3a-4a8e-9d2c-5e6f7a8b9c0d"


def request(**overrides):
    fields = {
        "partner_id": "fabrikam",
        "partner_region": "europe",
        "tenant_id": "Contoso.OnMicrosoft.com",
        "customer_name": "Contoso Ltd",
        "customer_region": "europe",
        "channel": "direct",
    }
    return given().when("relationship_requested", by=SALES, **{**fields, **overrides})


class TestWhenPartnerRequestsRelationship:
    def test_records_the_request_with_the_domain_in_lower_case(self):
        outcome = request().then(
            fact(
                "relationship_requested",
                at=NOW,
                tenant_id="contoso.onmicrosoft.com",
                tenant_guid=None,
                customer_region="europe",
                multi_partner=False,
            )
        )
        [decision] = outcome.decided
        assert decision.values["principal"] == SALES[0]
        assert decision.values["role"] == "sales_agent"
        assert decision.values["correlation_id"] == "corr-1"
        assert outcome.state.stage == "invited"

    def test_keeps_the_business_time_given(self):
        when = datetime(2026, 11, 2, 9, tzinfo=UTC)
        given().when(
            "relationship_requested",
            by=SALES,
            at=when,
            partner_id="p",
            partner_region="europe",
            tenant_id="t.example",
            customer_name="C",
            customer_region="europe",
            channel="other_partner",
            multi_partner=True,
        ).then(fact("relationship_requested", at=when, multi_partner=True))

    def test_refuses_a_business_time_in_the_future(self):
        request(at=days(1)).then_refused("occurred_in_future")
        given(requested()).when("note_added", at=days(2), text="x").then_refused(
            "occurred_in_future"
        )

    def test_refuses_a_billing_agent(self):
        given().when(
            "relationship_requested",
            by=BILLING,
            partner_id="p",
            partner_region="europe",
            tenant_id="t.example",
            customer_name="C",
            customer_region="europe",
            channel="direct",
        ).then_refused("role_not_permitted")

    def test_refuses_an_unknown_channel(self):
        request(channel="fax").then_refused("invalid_channel")

    def test_refuses_a_second_request_on_the_same_migration(self):
        given(requested()).when(
            "relationship_requested",
            by=SALES,
            partner_id="fabrikam",
            partner_region="europe",
            tenant_id="contoso.com",
            customer_name="C",
            customer_region="europe",
            channel="direct",
        ).then_refused("migration_exists")

    @pytest.mark.parametrize("tenant", ["contoso com", "-contoso.com", "contoso..com", "a/b"])
    def test_refuses_a_tenant_that_is_not_a_domain(self, tenant):
        request(tenant_id=tenant).then_refused("invalid_tenant_id")


class TestRegions:
    """Rule 9: a fixed list of CSP regions, and ISO 3166 country codes mapped to them."""

    def test_refuses_a_customer_in_another_region_naming_both(self):
        error = request(customer_region="north_america").then_refused(
            "region_mismatch", partner_region="europe", customer_region="north_america"
        )
        assert "europe" in error.message and "north_america" in error.message

    @pytest.mark.parametrize(("code", "region"), [("SE", "europe"), ("se", "europe")])
    def test_a_country_code_stands_for_its_region(self, code, region):
        request(customer_region=code).then(
            fact("relationship_requested", customer_region=region, customer_country="SE")
        )

    def test_a_country_of_another_region_is_a_mismatch(self):
        request(customer_region="US").then_refused(
            "region_mismatch", customer_region="north_america"
        )

    @pytest.mark.parametrize("region", ["emea", "mars", "XX", ""])
    def test_refuses_an_unknown_region(self, region):
        request(customer_region=region).then_refused("invalid_customer_region")

    def test_region_names_are_read_in_any_case(self):
        request(customer_region="Europe").then(
            fact("relationship_requested", customer_region="europe")
        )


class TestTenantIdentity:
    """Rule 8: the domain and the Entra tenant id (GUID)."""

    def test_keeps_the_tenant_guid_of_the_request(self):
        request(tenant_guid=GUID.upper()).then(fact("relationship_requested", tenant_guid=GUID))

    def test_refuses_a_tenant_guid_that_is_not_a_guid(self):
        request(tenant_guid="contoso").then_refused("invalid_tenant_guid")

    def test_acceptance_may_bring_the_tenant_guid(self):
        outcome = given(requested()).when(
            "invitation_accepted", by=CUSTOMER, accepted_by="ga", tenant_guid=GUID
        )
        outcome.then(fact("invitation_accepted", tenant_guid=GUID))
        assert outcome.state.tenant_guid == GUID

    def test_refuses_an_acceptance_naming_another_tenant(self):
        given(requested(tenant_guid=GUID)).when(
            "invitation_accepted", accepted_by="ga", tenant_guid=GUID.replace("0f", "1f")
        ).then_refused("tenant_guid_mismatch")


class TestWhenCustomerAccepts:
    def test_moves_to_accepted(self):
        outcome = given(requested(), original()).when(
            "invitation_accepted", by=CUSTOMER, accepted_by="ga@contoso.example"
        )
        outcome.then(fact("invitation_accepted", accepted_by="ga@contoso.example"))
        assert outcome.state.stage == "accepted"

    def test_refuses_a_second_acceptance(self):
        given(requested(), accepted()).when("invitation_accepted", accepted_by="x").then_refused(
            "already_accepted"
        )


class TestAdminAccess:
    """Rule 6: admin access is a set of relationships."""

    def test_several_gdap_relationships_may_be_live_at_once(self):
        outcome = given(requested(), gdap("gdap-1")).when(
            "admin_access_granted", kind="gdap", expires_at=days(200), relationship_id="gdap-2"
        )
        outcome.then(fact("admin_access_granted", relationship_id="gdap-2", kind="gdap"))
        assert sorted(outcome.state.admin_access) == ["gdap-1", "gdap-2"]

    def test_refuses_granting_a_live_relationship_again(self):
        given(requested(), gdap("gdap-1")).when(
            "admin_access_granted", kind="gdap", expires_at=days(200), relationship_id="gdap-1"
        ).then_refused("relationship_exists")

    def test_removing_one_keeps_the_others(self):
        outcome = given(requested(), gdap("gdap-1"), gdap("gdap-2")).when(
            "admin_access_removed", relationship_id="gdap-1"
        )
        outcome.then(fact("admin_access_removed", relationship_id="gdap-1"))
        assert outcome.state.has_admin_access(NOW)
        assert outcome.state.admin_access["gdap-1"].removed_at == NOW

    def test_removing_without_an_id_ends_them_all(self):
        outcome = given(requested(), gdap("gdap-1"), gdap("gdap-2")).when("admin_access_removed")
        outcome.then(fact("admin_access_removed", relationship_id=None))
        assert not outcome.state.has_admin_access(NOW)

    def test_refuses_removing_an_unknown_relationship(self):
        given(requested(), gdap("gdap-1")).when(
            "admin_access_removed", relationship_id="gdap-9"
        ).then_refused("unknown_relationship")

    def test_refuses_removing_when_none_is_live(self):
        given(requested()).when("admin_access_removed").then_refused("no_admin_access")

    def test_refuses_a_new_dap_after_october_2023(self):
        given(requested()).when("admin_access_granted", kind="dap").then_refused(
            "dap_not_available"
        )

    def test_a_dap_granted_before_october_2023_stays_valid(self):
        old = datetime(2023, 6, 1, tzinfo=UTC)
        outcome = given(requested(at=datetime(2023, 5, 1, tzinfo=UTC))).when(
            "admin_access_granted", kind="dap", at=old
        )
        outcome.then(fact("admin_access_granted", kind="dap", relationship_id="dap"))
        assert outcome.state.has_admin_access(NOW)

    def test_refuses_gdap_longer_than_730_days(self):
        given(requested()).when(
            "admin_access_granted", kind="gdap", expires_at=days(731)
        ).then_refused("invalid_expires_at")

    def test_refuses_gdap_without_expiry(self):
        given(requested()).when("admin_access_granted", kind="gdap").then_refused(
            "invalid_expires_at"
        )

    def test_refuses_an_expiry_before_the_grant(self):
        given(requested()).when(
            "admin_access_granted", kind="gdap", expires_at=days(-1)
        ).then_refused("invalid_expires_at")


class TestEveryCommand:
    def test_refuses_an_unknown_event_type(self):
        given(requested()).when("original_teleported").then_refused("unknown_event_type")

    def test_refuses_asking_for_completion(self):
        given(requested()).when("migration_completed").then_refused("unknown_event_type")

    def test_refuses_a_command_on_a_migration_never_requested(self):
        given().when("note_added", text="x").then_refused("migration_not_found")

    def test_another_partner_sees_no_migration(self):
        given(requested()).when("note_added", partner="northwind", text="x").then_refused(
            "migration_not_found"
        )

    def test_a_missing_field_is_named(self):
        given(requested()).when("note_added").then_refused("missing_text")

    def test_refuses_an_empty_note(self):
        given(requested()).when("note_added", text="  ").then_refused("invalid_text")

    def test_notes_are_kept_for_the_audit_trail(self):
        given(requested()).when("note_added", by=BILLING, text="called").then(
            fact("note_added", text="called")
        )


class TestWhenClosed:
    @pytest.mark.parametrize("close", ["abandoned", "completed"])
    def test_refuses_further_migration_steps(self, close):
        closing = (
            [fact("migration_abandoned", reason="customer chose another partner")]
            if close == "abandoned"
            else [
                accepted(),
                provisioned(),
                on("original_subscription_cancelled", cancelled_by="partner", at=days(-1)),
                fact("migration_completed", at=days(-1)),
            ]
        )
        closed = given(requested(), original(), *closing)
        assert closed.state.stage == close
        closed.when(
            "original_subscription_recorded",
            subscription_id="orig-9",
            offer_id="x",
            offer_name="x",
            licenses=1,
            term_end=days(9).date(),
            purchased_via="other_channel",
            billing_cycle="annual",
        ).then_refused("migration_closed")
        closed.when("migration_abandoned", reason="again").then_refused("migration_closed")

    def test_refuses_even_notes_after_abandonment(self):
        given(requested(), fact("migration_abandoned", reason="r")).when(
            "note_added", text="too late"
        ).then_refused("migration_closed")


class TestBusinessTimeBounds:
    def test_nothing_may_be_dated_before_the_request(self):
        given(requested(at=days(-60))).when(
            "admin_access_granted", at=days(-61), kind="gdap", expires_at=days(100)
        ).then_refused("before_request")

    def test_a_new_dap_cannot_be_back_dated_past_the_cutoff(self):
        given(requested()).when(
            "admin_access_granted", at=datetime(1990, 1, 1, tzinfo=UTC), kind="dap"
        ).then_refused("before_request")

    def test_originals_held_before_the_request_may_be_dated_before_it(self):
        given(requested(at=days(-60))).when(
            "original_subscription_recorded",
            at=days(-400),
            subscription_id="orig-1",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=5,
            term_end=days(20).date(),
            purchased_via="other_channel",
            billing_cycle="annual",
        ).then(fact("original_subscription_recorded", at=days(-400)))

    def test_a_relationship_granted_again_keeps_the_old_one_for_business_time(self):
        migration = given(
            requested(at=days(-400)),
            original(via="m365_admin_portal", at=days(-399)),
            gdap("gdap-1", expires=days(-5), at=days(-300)),
            gdap("gdap-1", expires=days(300), at=days(-2)),
            on("original_subscription_cancelled", cancelled_by="customer", at=days(-200)),
        )
        assert len(migration.state.admin_access) == 2
        # Asked on the customer's behalf 100 days ago, under the first grant.
        migration.when(
            "credit_requested",
            by=BILLING,
            at=days(-100),
            subscription_id="orig-1",
            requested_by="partner",
        ).then(fact("credit_requested", requested_by="partner"))


class TestTenantIdentified:
    def test_records_the_tenant_id_once_known(self):
        outcome = given(requested()).when("tenant_identified", tenant_guid=GUID.upper())
        outcome.then(fact("tenant_identified", tenant_guid=GUID))
        assert outcome.state.tenant_guid == GUID

    def test_refuses_another_tenant_id(self):
        given(requested(tenant_guid=GUID)).when(
            "tenant_identified", tenant_guid=GUID.replace("0f", "1f")
        ).then_refused("tenant_guid_mismatch")

    def test_refuses_the_same_tenant_id_again(self):
        given(requested(tenant_guid=GUID)).when("tenant_identified", tenant_guid=GUID).then_refused(
            "tenant_already_identified"
        )

    def test_only_the_account_admin_or_the_system(self):
        given(requested()).when("tenant_identified", by=SALES, tenant_guid=GUID).then_refused(
            "role_not_permitted"
        )
