"""The OpenAPI schema reads well and tells the truth (issue 10, item 16): the package version,
short unique operation ids, summaries for people, only the error statuses a route can answer,
every parameter described, the export's media types, and named schemas only."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.app import create_app
from api.routes import audit, dashboard, deadlines, events, health, ingest, ledger, migrations
from api.settings import Settings

METHODS = {"get", "post", "put", "patch", "delete"}
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
CAMEL = re.compile(r"^[A-Z][a-z0-9]*([A-Z][a-z0-9]*)*$")
# api/routes/health.py (another owner's file) has no summaries yet.
HEALTH = {"/healthz", "/readyz", "/metrics"}


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(Settings(demo_on_empty=False), env={})


@pytest.fixture(scope="module")
def schema(app) -> dict[str, Any]:
    return app.openapi()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_info_version_is_the_package_version(schema):
    assert schema["info"]["version"] == importlib.metadata.version("csp-tracker")


def test_operation_ids_are_the_route_function_names_and_unique(schema):
    ids = [op["operationId"] for _, _, op in operations(schema)]
    assert len(ids) == len(set(ids)), sorted(ids)
    for operation_id in ids:
        assert SNAKE.match(operation_id), operation_id
        assert len(operation_id) <= 32, operation_id
        assert "v1" not in operation_id.split("_"), operation_id
    modules = (audit, dashboard, deadlines, events, health, ingest, ledger, migrations)
    names = {r.name for m in modules for r in m.router.routes if isinstance(r, APIRoute)}
    assert set(ids) == names
    assert {"record_event", "list_migrations", "request_relationship"} <= set(ids)


def _default_summary(operation_id: str) -> str:
    # What FastAPI writes when a route has no summary of its own.
    return operation_id.replace("_", " ").title()


@pytest.mark.parametrize("health", [False, True], ids=["v1", "health"])
def test_every_operation_has_a_summary_written_for_people(schema, health):
    for method, path, op in operations(schema):
        if (path in HEALTH) != health:
            continue
        summary = op.get("summary", "")
        assert summary and summary != _default_summary(op["operationId"]), (method, path)
        assert summary[0].isupper() and not summary.endswith("."), summary


def test_no_get_documents_409_or_412(schema):
    for method, path, op in operations(schema):
        if method == "get":
            assert not {"409", "412"} & set(op["responses"]), (path, sorted(op["responses"]))


def test_routes_document_only_their_own_error_statuses(schema):
    paths = schema["paths"]
    assert set(paths["/v1/ledger/heads"]["get"]["responses"]) == {"200", "401", "422", "503"}
    assert set(paths["/v1/migrations/{migration_id}"]["get"]["responses"]) == {
        "200",
        "401",
        "404",
        "422",
        "503",
    }
    assert "412" in paths["/v1/migrations/{migration_id}/events"]["post"]["responses"]
    assert "412" not in paths["/v1/migrations"]["post"]["responses"]
    for method, path, op in operations(schema):
        responses = op["responses"]
        if path.startswith("/v1/"):
            assert {"401", "422", "503"} <= set(responses), (method, path)
        if method == "post" and path.startswith("/v1/"):
            # Bodies pass the body guard: too large (413), refused encodings and keys (400).
            assert {"400", "413"} <= set(responses), (method, path)
        else:
            assert not {"400", "413"} & set(responses), (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = response["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_every_parameter_is_described(schema):
    missing = [
        (path, p["in"], p["name"])
        for _, path, op in operations(schema)
        for p in op.get("parameters", [])
        if not p.get("description")
    ]
    assert missing == []


def test_the_export_declares_csv_and_ndjson(schema):
    ok = schema["paths"]["/v1/audit/export"]["get"]["responses"]["200"]
    assert {"text/csv", "application/x-ndjson"} <= set(ok["content"])
    assert "application/json" not in ok["content"]


def test_every_component_schema_has_a_plain_camel_case_name(schema):
    names = list(schema["components"]["schemas"])
    assert names
    for name in names:
        assert CAMEL.match(name), name


def test_every_json_response_is_a_named_model(schema):
    for method, path, op in operations(schema):
        for status, response in op["responses"].items():
            content = response.get("content", {}).get("application/json")
            if content is not None:
                assert set(content["schema"]) == {"$ref"}, (method, path, status)


def test_each_event_body_defaults_its_type_to_its_literal(schema):
    body = schema["paths"]["/v1/migrations/{migration_id}/events"]["post"]["requestBody"]
    members = _event_or_batch(body)[0]["oneOf"]
    assert len(members) >= 20
    components = schema["components"]["schemas"]
    for member in members:
        name = member["$ref"].rsplit("/", 1)[1]
        kind = components[name]["properties"]["type"]
        assert kind["default"] == kind["const"], name


def _event_or_batch(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The two forms of POST .../events: one event (a discriminated union), or an array."""
    forms = body["content"]["application/json"]["schema"]["oneOf"]
    assert len(forms) == 2
    return forms


def test_record_event_takes_one_event_or_an_array_of_up_to_100(schema):
    body = schema["paths"]["/v1/migrations/{migration_id}/events"]["post"]["requestBody"]
    assert body["required"] is True
    one, many = _event_or_batch(body)
    assert one["discriminator"]["propertyName"] == "type"
    assert many == {"type": "array", "items": one, "minItems": 1, "maxItems": 100}


def test_the_batch_across_migrations_is_documented(schema):
    operation = schema["paths"]["/v1/events:batch"]["post"]
    assert operation["operationId"] == "record_batch"
    assert set(operation["responses"]) == {"200", "400", "401", "403", "413", "422", "503"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array" and (body["minItems"], body["maxItems"]) == (1, 100)
    item = schema["components"]["schemas"]["BatchItem"]
    assert item["additionalProperties"] is False
    assert item["required"] == ["migration_id", "event"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/BatchResults"}
