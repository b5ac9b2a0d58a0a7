"""The wire formats of the domain rules, through the API on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.api.conftest import ACCEPTED, CANCELLED, ORIGINAL, PROVISIONED

GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
TODAY = date.today()


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def original(sub: str, licenses: int, offer: str = "O365_E3", **extra) -> dict:
    return {**ORIGINAL, "subscription_id": sub, "licenses": licenses, "offer_id": offer, **extra}


def recorded(response) -> list[str]:
    assert response.status_code == 201, response.text
    return [e["type"] for e in response.json()["events"]]


class TestLicenseTotals:
    def test_two_originals_replaced_by_one_complete_when_both_ended(self, api):
        mid = api.new_migration()["id"]
        recorded(api.event(mid, original("orig-1", 10)))
        recorded(api.event(mid, original("orig-2", 15, offer="o365_e3")))
        recorded(api.event(mid, ACCEPTED))
        body = {**PROVISIONED, "replaces": ["orig-1", "orig-2"], "offer_id": "O365_e3"}
        response = api.event(mid, body)
        assert recorded(response) == ["subscription_provisioned"]
        state = response.json()["state"]
        assert state["risks"] == []
        assert state["offers"] == [
            {"family": "office_365_e3", "original": 25, "provisioned": 25, "required": 25}
        ]
        assert state["replacements"][0]["reassignment_pending"] is False
        recorded(api.event(mid, CANCELLED))
        last = api.event(mid, {**CANCELLED, "subscription_id": "orig-2"})
        assert recorded(last) == ["original_subscription_cancelled", "migration_completed"]

    def test_an_accepted_reduction_needs_the_account_admin(self, api):
        mid = api.new_migration()["id"]
        recorded(api.event(mid, ORIGINAL))
        recorded(api.event(mid, ACCEPTED))
        recorded(api.event(mid, {**PROVISIONED, "licenses": 20}))
        body = {
            "type": "license_reduction_accepted",
            "offer_id": "O365_E3",
            "licenses": 20,
            "reason": "five leavers",
        }
        refused = api.event(mid, body, who="sales_a")
        assert refused.status_code == 403
        response = api.event(mid, body, who="admin_a")
        assert recorded(response) == ["license_reduction_accepted"]
        assert "license_shortfall" not in response.json()["state"]["risks"]


class TestOriginals:
    def test_renewal_and_correction(self, api):
        mid = api.new_migration()["id"]
        past = (TODAY - timedelta(days=2)).isoformat()
        recorded(api.event(mid, {**ORIGINAL, "term_end": past}))
        renewed = api.event(
            mid,
            {
                "type": "original_subscription_renewed",
                "subscription_id": "orig-1",
                "term_end": (TODAY + timedelta(days=363)).isoformat(),
            },
        )
        assert recorded(renewed) == ["original_subscription_renewed"]
        corrected = api.event(
            mid,
            {
                "type": "original_corrected",
                "subscription_id": "orig-1",
                "licenses": 30,
                "reason": "the invoice says 30",
            },
        )
        assert recorded(corrected) == ["original_corrected"]
        [o] = corrected.json()["state"]["originals"]
        assert (o["licenses"], o["term_end"]) == (30, (TODAY + timedelta(days=363)).isoformat())

    def test_an_expiry_before_the_term_end_is_refused(self, api):
        mid = api.new_migration()["id"]
        recorded(api.event(mid, {**ORIGINAL, "auto_renew": False}))
        response = api.event(
            mid, {"type": "original_subscription_expired", "subscription_id": "orig-1"}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "before_term_end"

    def test_a_multi_partner_migration_completes_with_an_original_left_behind(self, api):
        mid = api.new_migration(multi_partner=True)["id"]
        recorded(api.event(mid, ORIGINAL))
        recorded(api.event(mid, original("orig-3", 40, offer="EXO_P1")))
        exclusion = {
            "type": "original_excluded",
            "subscription_id": "orig-3",
            "reason": "kept_with_other_partner",
        }
        recorded(api.event(mid, exclusion))
        recorded(api.event(mid, ACCEPTED))
        recorded(api.event(mid, PROVISIONED))
        done = api.event(mid, CANCELLED)
        assert recorded(done) == ["original_subscription_cancelled", "migration_completed"]
        assert done.json()["state"]["originals"][1]["excluded"] == "kept_with_other_partner"


class TestAdminAccessAndTenant:
    def test_relationships_are_named_and_a_new_dap_is_refused(self, api):
        mid = api.new_migration()["id"]
        gdap = {
            "type": "admin_access_granted",
            "kind": "gdap",
            "expires_at": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
            "relationship_id": "rel-1",
        }
        granted = api.event(mid, gdap)
        assert recorded(granted) == ["admin_access_granted"]
        state = granted.json()["state"]
        assert [r["relationship_id"] for r in state["admin_access"]] == ["rel-1"]
        assert "admin_access_expiring" in state["risks"]
        dap = api.event(mid, {"type": "admin_access_granted", "kind": "dap"})
        assert dap.status_code == 422
        assert dap.json()["error"] == "dap_not_available"
        removed = api.event(mid, {"type": "admin_access_removed", "relationship_id": "rel-1"})
        assert recorded(removed) == ["admin_access_removed"]
        assert removed.json()["state"]["admin_access"] == []

    def test_one_open_migration_per_partner_and_tenant_guid(self, api):
        first = api.new_migration(tenant_guid=GUID)
        assert first["state"]["tenant_guid"] == GUID
        response = api.post(
            "sales_a",
            "/v1/migrations",
            {
                "tenant_id": "contoso-renamed.com",
                "tenant_guid": GUID.upper(),
                "customer_name": "Contoso",
                "customer_region": "SE",
                "channel": "direct",
            },
        )
        assert response.status_code == 409
        assert response.json()["error"] == "migration_open"

    def test_a_guid_learnt_at_acceptance_is_claimed_too(self, api):
        mid = api.new_migration()["id"]
        recorded(api.event(mid, {**ACCEPTED, "tenant_guid": GUID}))
        response = api.post(
            "sales_a",
            "/v1/migrations",
            {
                "tenant_id": "other-domain.com",
                "tenant_guid": GUID,
                "customer_name": "Contoso",
                "customer_region": "europe",
                "channel": "direct",
            },
        )
        assert response.status_code == 409


class TestAsOfBasis:
    def test_business_basis_includes_facts_recorded_later(self, api):
        mid = api.new_migration(occurred_at=ago(30))["id"]
        recorded(api.event(mid, {**ORIGINAL, "occurred_at": ago(29)}))
        between = ago(10)
        # Recorded now, but it happened 20 days ago.
        recorded(api.event(mid, {**ACCEPTED, "occurred_at": ago(20)}))
        url = f"/v1/migrations/{mid}"
        business = api.get("admin_a", url, params={"as_of": between, "basis": "business"})
        assert business.status_code == 200, business.text
        assert business.json()["stage"] == "accepted"
        recorded_basis = api.get("admin_a", url, params={"as_of": between})
        assert recorded_basis.status_code == 404  # nothing was recorded 10 days ago
        bad = api.get("admin_a", url, params={"as_of": between, "basis": "gut"})
        assert bad.status_code == 422


class TestTimeTravelBounds:
    def test_a_far_future_as_of_is_422_not_500(self, api):
        mid = api.new_migration()["id"]
        for basis in ("recorded", "business"):
            response = api.get(
                "admin_a",
                f"/v1/migrations/{mid}",
                params={"as_of": "9999-12-31T23:59:59Z", "basis": basis},
            )
            assert response.status_code == 422, response.text

    def test_a_business_view_names_the_facts_it_leaves_out(self, api):
        mid = api.new_migration(occurred_at=ago(30))["id"]
        recorded(api.event(mid, ORIGINAL))  # entered now
        late = api.event(mid, {**CANCELLED, "occurred_at": ago(10)})  # happened 10 days ago
        version = late.json()["events"][0]["version"]
        response = api.get(
            "admin_a", f"/v1/migrations/{mid}", params={"as_of": ago(5), "basis": "business"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["left_out"] == [version]
