"""Hardening of the wire format (issue 10): strict request types (item 4), no library
internals on events (item 9), and the typed dashboard summary (item 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from api.schemas import DashboardSummary, RiskCounts, StageCounts
from domain.rules import HORIZONS_DAYS
from domain.vocabulary import Risk, Stage
from tests.api.conftest import ACCEPTED, CANCELLED, ORIGINAL, PROVISIONED, SEED

GUID = "8f0e1c4e-4a6b-4d67-9d0a-1b2c3d4e5f60"


def refused_naming(response: Any, field: str) -> None:
    """422 validation_error, the field named in the message and in the first error's loc."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error", body
    assert field in body["message"], body
    assert body["details"]["errors"][0]["loc"][-1] == field, body


# -- item 4: strict types -------------------------------------------------------------------
class TestStrictTypes:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("multi_partner", "yes"),
            ("multi_partner", 1),
            ("occurred_at", 1_790_000_000),
            ("tenant_guid", 12345),
            ("customer_name", 42),
        ],
    )
    def test_a_relationship_request_with_a_lax_value_is_refused(self, api, field, value):
        refused_naming(api.post("sales_a", "/v1/migrations", {**SEED, field: value}), field)
        # Nothing was stored: the tenant is still free for a proper request.
        assert api.post("sales_a", "/v1/migrations", SEED).status_code == 201

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("licenses", True),
            ("licenses", "25"),
            ("licenses", 25.5),
            ("auto_renew", "off"),
            ("auto_renew", 0),
            ("occurred_at", 1_790_000_000),
            ("occurred_at", 1_790_000_000.5),
            ("term_end", 20270131),
            ("term_end", "2027-01-31T00:00:00"),
            ("subscription_id", 7),
        ],
    )
    def test_an_event_with_a_lax_value_is_refused(self, api, field, value):
        migration_id = api.new_migration()["id"]
        refused_naming(api.event(migration_id, {**ORIGINAL, field: value}), field)
        state = api.get("admin_a", f"/v1/migrations/{migration_id}").json()
        assert state["version"] == 1
        assert state["originals"] == []

    def test_a_whole_number_written_with_a_point_is_that_number(self, api):
        # JSON has one number type, and JSON Schema's `integer` admits 25.0: it is 25.
        migration_id = api.new_migration()["id"]
        response = api.event(migration_id, {**ORIGINAL, "licenses": 25.0})
        assert response.status_code == 201, response.text
        assert response.json()["state"]["licenses"]["original"] == 25

    def test_true_is_not_one_license(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        api.event(migration_id, ACCEPTED)
        refused_naming(api.event(migration_id, {**PROVISIONED, "licenses": True}), "licenses")
        assert api.get("admin_a", f"/v1/migrations/{migration_id}").json()["version"] == 3

    def test_money_and_ids_must_be_strings(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        requested = {
            "type": "credit_requested",
            "subscription_id": "orig-1",
            "requested_by": "customer",
        }
        assert api.event(migration_id, requested, who="billing_a").status_code == 201
        resolved = {
            "type": "credit_resolved",
            "subscription_id": "orig-1",
            "outcome": "granted",
            "currency": "EUR",
        }
        for amount in (120, 120.5, "12e1", " 120.00"):
            response = api.event(migration_id, {**resolved, "amount": amount}, who="billing_a")
            refused_naming(response, "amount")
        refused_naming(
            api.event(migration_id, {"type": "tenant_identified", "tenant_guid": 1}), "tenant_guid"
        )

    def test_strings_for_times_dates_ids_and_money_are_still_read(self, api):
        migration_id = api.new_migration(tenant_guid=GUID, occurred_at="2026-01-05T09:00:00Z")["id"]
        response = api.event(migration_id, {**ORIGINAL, "occurred_at": "2026-01-06T10:00:00+01:00"})
        assert response.status_code == 201, response.text
        event = response.json()["events"][0]
        assert event["term_end"] == "2027-01-31"
        assert event["licenses"] == 25
        assert event["auto_renew"] is True

    def test_the_type_of_an_event_is_still_required(self, api):
        # `type` has its literal as a default in the schema (for generated clients), but the
        # server needs it to know which event a body is.
        migration_id = api.new_migration()["id"]
        body = {k: v for k, v in ORIGINAL.items() if k != "type"}
        response = api.event(migration_id, body)
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"


# -- item 9: no library internals on the wire ----------------------------------------------
INTERNAL = {"originator_topic", "_prev", "_link"}


def keys_of(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_of(item)


def assert_clean(where: str, value: Any) -> None:
    found = {k for k in keys_of(value) if k in INTERNAL or k.startswith("_")}
    assert not found, (where, found)


def test_no_event_on_the_wire_carries_library_internals(api):
    started = api.post("sales_a", "/v1/migrations", SEED, **{"Idempotency-Key": "start-1"})
    assert started.status_code == 201
    migration_id = started.json()["id"]
    responses: dict[str, Any] = {"POST /v1/migrations": started.json()}
    for body in (ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED):  # the last completes it too
        response = api.event(migration_id, body, **{"Idempotency-Key": body["type"]})
        assert response.status_code == 201, response.text
        responses[f"POST events {body['type']}"] = response.json()
    assert [e["type"] for e in responses[f"POST events {CANCELLED['type']}"]["events"]] == [
        "original_subscription_cancelled",
        "migration_completed",
    ]
    replay = api.event(migration_id, CANCELLED, **{"Idempotency-Key": CANCELLED["type"]})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    responses["replay"] = replay.json()
    replayed_start = api.post("sales_a", "/v1/migrations", SEED, **{"Idempotency-Key": "start-1"})
    responses["replayed start"] = replayed_start.json()
    api.settle()
    responses["GET migration"] = api.get("admin_a", f"/v1/migrations/{migration_id}").json()
    history = api.get("admin_a", f"/v1/migrations/{migration_id}/history").json()
    assert len(history["items"]) == 6
    responses["GET history"] = history
    audit = api.get("auditor", "/v1/audit", params={"migration_id": migration_id}).json()
    assert len(audit["items"]) == 6
    responses["GET audit"] = audit
    export = api.get("auditor", "/v1/audit/export", params={"format": "jsonl"}).text
    responses["GET export"] = [json.loads(line) for line in export.splitlines()]
    for where, value in responses.items():
        assert_clean(where, value)
    for where in ("GET history", "GET audit"):
        for row in responses[where]["items"]:
            assert_clean(where, row["payload"])


# -- item 15: the dashboard summary ----------------------------------------------------------
def test_the_summary_model_names_every_stage_and_risk():
    assert set(StageCounts.model_fields) == {s.value for s in Stage}
    assert set(RiskCounts.model_fields) == {r.value for r in Risk}


class TestDashboardSummary:
    def test_every_risk_and_stage_is_present_with_zero(self, api):
        # Nothing stored yet: all zero, every key present.
        empty = api.get("auditor", "/v1/dashboard/summary")
        assert empty.status_code == 200
        overall = empty.json()["overall"]
        assert overall["risks"] == {r.value: 0 for r in Risk}
        assert overall["stages"] == {s.value: 0 for s in Stage}
        assert overall["ending_unreplaced"] == {str(d): 0 for d in HORIZONS_DAYS}
        assert empty.json()["partners"] == {}

        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        api.settle()
        body = api.get("admin_a", "/v1/dashboard/summary").json()
        DashboardSummary.model_validate(body)
        for counts in (body["overall"], body["partners"]["fabrikam"]):
            assert set(counts["risks"]) == {r.value for r in Risk}
            assert set(counts["stages"]) == {s.value for s in Stage}
            assert counts["stages"]["invited"] == 1
            assert counts["risks"]["double_billing"] == 0
            assert list(counts["ending_unreplaced"]) == [str(d) for d in HORIZONS_DAYS]

    def test_money_is_the_stored_string(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        requested = {
            "type": "credit_requested",
            "subscription_id": "orig-1",
            "requested_by": "customer",
        }
        assert api.event(migration_id, requested, who="billing_a").status_code == 201
        resolved = {
            "type": "credit_resolved",
            "subscription_id": "orig-1",
            "outcome": "granted",
            "amount": "120.00",
            "currency": "EUR",
        }
        assert api.event(migration_id, resolved, who="billing_a").status_code == 201
        api.settle()
        credits = api.get("auditor", "/v1/dashboard/summary").json()["overall"]["credits"]
        assert credits["granted_amount"] == {"EUR": "120.00"}
        assert (credits["requested"], credits["granted"], credits["denied"]) == (1, 1, 0)

    def test_the_schema_documents_the_shape_with_an_example(self, api):
        schema = api.client.get("/openapi.json").json()
        operation = schema["paths"]["/v1/dashboard/summary"]["get"]
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/DashboardSummary"}
        components = schema["components"]["schemas"]
        summary = components["DashboardSummary"]
        assert "overall" in summary["description"] and "partners" in summary["description"]
        example = summary["examples"][0]
        assert example["overall"]["credits"]["granted_amount"] == {"EUR": "120.00"}
        DashboardSummary.model_validate(example)
        ending = components["EndingUnreplaced"]["properties"]
        assert list(ending) == [str(d) for d in HORIZONS_DAYS]
        assert all(p.get("description") for p in ending.values())
        assert set(components["RiskCounts"]["properties"]) == {r.value for r in Risk}
