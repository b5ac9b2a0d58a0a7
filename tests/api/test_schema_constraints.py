"""The schema says the server's real constraints (issue 10, item 16, "the schema must tell the
truth"), each checked both ways: what the schema allows is accepted, what it refuses is refused.

`tests/api/test_schemathesis_cli.py` runs schemathesis over the whole API; these are the cases
it first found, made explicit: the If-Match format, NUL in query strings, the year range and
the calendar of dates and times, known regions, the required `type`, rules across fields.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from domain.regions import place, regions
from tests.api.conftest import ORIGINAL, SEED


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app(Settings(demo_on_empty=False), env={}).openapi()


def _parameter(schema: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in schema["paths"][path][method]["parameters"] if p["name"] == name]
    return found["schema"]


def _allows(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


# -- If-Match ----------------------------------------------------------------------------------
IF_MATCH_OK = ["1", '"1"', 'W/"1"', "*"]
IF_MATCH_BAD = ['""1', '1"', "W/1", "null", "1.0", "-1", "1, 2"]


def test_the_if_match_pattern_is_what_the_server_reads(api, schema):
    pattern = _parameter(schema, "/v1/migrations/{migration_id}/events", "post", "if-match")
    assert pattern["type"] == "string"
    for value in IF_MATCH_OK:
        assert _allows(pattern["pattern"], value), value
        migration = api.new_migration()
        response = api.event(migration["id"], ORIGINAL, **{"If-Match": value})
        assert response.status_code == 201, (value, response.text)
        api.post("admin_a", f"/v1/migrations/{migration['id']}/events", _abandon())
    migration_id = api.new_migration()["id"]
    for value in IF_MATCH_BAD:
        assert not _allows(pattern["pattern"], value), value
        response = api.event(migration_id, ORIGINAL, **{"If-Match": value})
        assert response.status_code == 422, (value, response.text)
        assert response.json()["error"] == "invalid_if_match"


def _abandon() -> dict[str, str]:
    return {"type": "migration_abandoned", "reason": "test"}


# -- parameters: never null, never NUL ---------------------------------------------------------
def test_no_parameter_is_nullable_and_every_string_query_refuses_nul(schema):
    for item in schema["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                param_schema = parameter["schema"]
                assert {"type": "null"} not in param_schema.get("anyOf", []), parameter
                if (
                    parameter["in"] == "query"
                    and param_schema.get("type") == "string"
                    and "enum" not in param_schema
                ):
                    assert not _allows(param_schema["pattern"], "a\x00b"), parameter


def test_nul_is_refused_in_declared_parameters_only(api):
    refused = api.get("auditor", "/v1/audit", params={"by": "a\x00b"})
    assert refused.status_code == 422
    assert refused.json()["error"] == "invalid_input"
    # A parameter the route does not read reaches nothing: ignored, as any unknown one.
    assert api.get("auditor", "/v1/audit", params={"nope": "a\x00b"}).status_code == 200


# -- dates and times ---------------------------------------------------------------------------
TIMES_OK = [
    "2024-02-29",
    "2000-02-29T12:00:00Z",
    "2026-11-02T09:00",
    "2026-11-02T09:00:00.123456+01:00",
    "2200-12-31T23:59:59-23:59",
]
TIMES_BAD = [
    "2023-02-29",
    "2100-02-29",
    "2026-04-31",
    "1989-12-31T23:59:59Z",
    "2201-01-01",
    "2026-11-02 09:00:00",
    "2026-11-02T09:00:00.1234567Z",
    "1790000000",
    "2026-11-02T24:00:00Z",
]


def test_query_times_accept_exactly_their_pattern(api, schema):
    pattern = _parameter(schema, "/v1/audit", "get", "recorded_from")["pattern"]
    for value in TIMES_OK:
        assert _allows(pattern, value), value
        response = api.get("auditor", "/v1/audit", params={"recorded_from": value})
        assert response.status_code == 200, (value, response.text)
    for value in TIMES_BAD:
        assert not _allows(pattern, value), value
        response = api.get("auditor", "/v1/audit", params={"recorded_from": value})
        assert response.status_code == 422, (value, response.text)


def test_body_times_need_seconds_and_a_zone_and_dates_must_exist(api, schema):
    components = schema["components"]["schemas"]
    recorded = components["OriginalSubscriptionRecorded"]["properties"]
    (when, _null) = recorded["occurred_at"]["anyOf"]
    assert when["format"] == "date-time"
    day = recorded["term_end"]
    assert day["format"] == "date"
    migration_id = api.new_migration()["id"]
    for field, value, ok in [
        ("occurred_at", "2026-01-02T09:00Z", False),
        ("occurred_at", "2026-01-02T09:00:00", False),
        ("occurred_at", "1989-12-31T23:59:59Z", False),
        ("term_end", "2027-02-29", False),
        ("term_end", "2028-02-29", True),
    ]:
        pattern = when["pattern"] if field == "occurred_at" else day["pattern"]
        assert _allows(pattern, value) is ok, value
        response = api.event(migration_id, {**ORIGINAL, field: value})
        assert (response.status_code == 201) is ok, (value, response.text)


# -- regions -----------------------------------------------------------------------------------
def test_regions_are_the_domain_table_as_an_enum(api, schema):
    names = schema["components"]["schemas"]["Region"]["enum"]
    assert set(regions()) < set(names)
    for name in names:
        assert place(name).region in regions()
    assert "SE" in names and "se" not in names and "Europe" not in names
    request = schema["components"]["schemas"]["RelationshipRequest"]
    assert request["properties"]["customer_region"]["$ref"].endswith("/Region")
    for value in ("Europe", "se", " SE", "00", "asia"):
        response = api.post("sales_a", "/v1/migrations", {**SEED, "customer_region": value})
        assert response.status_code == 422, (value, response.text)
        assert response.json()["error"] == "invalid_customer_region"
    assert (
        api.post("sales_a", "/v1/migrations", {**SEED, "customer_region": "SE"}).status_code == 201
    )


# -- event bodies ------------------------------------------------------------------------------
def test_each_event_body_requires_its_type(api, schema):
    body = schema["paths"]["/v1/migrations/{migration_id}/events"]["post"]["requestBody"]
    one_event, _array = body["content"]["application/json"]["schema"]["oneOf"]
    for member in one_event["oneOf"]:
        name = member["$ref"].rsplit("/", 1)[1]
        assert "type" in schema["components"]["schemas"][name]["required"], name
    migration_id = api.new_migration()["id"]
    untyped = {k: v for k, v in ORIGINAL.items() if k != "type"}
    assert api.event(migration_id, untyped).status_code == 422


@pytest.mark.parametrize(
    ("body", "model"),
    [
        (
            {"type": "credit_resolved", "subscription_id": "orig-1", "outcome": "granted"},
            "CreditResolved",
        ),
        (
            {
                "type": "credit_resolved",
                "subscription_id": "orig-1",
                "outcome": "granted",
                "amount": "120.00",
                "currency": None,
            },
            "CreditResolved",
        ),
        ({"type": "admin_access_granted", "kind": "gdap"}, "AdminAccessGranted"),
        (
            {"type": "original_corrected", "subscription_id": "orig-1", "reason": "typo"},
            "OriginalCorrected",
        ),
        (
            {
                "type": "original_corrected",
                "subscription_id": "orig-1",
                "reason": "typo",
                "licenses": None,
            },
            "OriginalCorrected",
        ),
    ],
)
def test_rules_across_fields_are_in_the_schema_and_refused_as_input(api, schema, body, model):
    component = schema["components"]["schemas"][model]
    assert {"if", "then"} <= set(component) or "not" in component
    response = api.event(api.new_migration()["id"], body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


def test_amounts_are_above_zero_and_texts_are_not_blank(api, schema):
    components = schema["components"]["schemas"]
    (amount, _null) = components["CreditResolved"]["properties"]["amount"]["anyOf"]
    for value, ok in [("0", False), ("0.00", False), ("0.0001", True), ("120.00", True)]:
        assert _allows(amount["pattern"], value) is ok, value
    name = components["RelationshipRequest"]["properties"]["customer_name"]["pattern"]
    for value in (" ", "\t\n", "\u3000", "\ufeff"):
        assert not _allows(name, value), value
        response = api.post("sales_a", "/v1/migrations", {**SEED, "customer_name": value})
        assert response.status_code == 422, (repr(value), response.text)


# -- methods -----------------------------------------------------------------------------------
def test_405_names_every_method_of_the_path(api):
    response = api.client.options("/v1/migrations")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
