"""`Prefer: return=minimal` (RFC 7240) on POST /v1/migrations/{id}/events, on both stores: the
answer leaves the migration's state out; nothing else about the write changes."""

from __future__ import annotations

from uuid import UUID

import pytest

from api.routes.migrations import prefers_minimal
from tests.api.conftest import ORIGINAL

NOTE = {"type": "note_added", "text": "called the customer"}
MINIMAL = {"Prefer": "return=minimal"}


def _stored_versions(api, migration_id: str) -> int:
    return len(api.tracker.history(UUID(migration_id)))


class TestWithoutPrefer:
    def test_answers_the_events_and_the_state_with_location_and_etag(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, NOTE)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"id", "version", "events", "state"}
        assert body["state"]["version"] == body["version"] == 2
        assert response.headers["ETag"] == "2"
        assert response.headers["Location"] == f"/v1/migrations/{mid}"
        assert response.headers["Vary"] == "Prefer"
        assert "Preference-Applied" not in response.headers

    def test_return_representation_is_the_default_answer(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, NOTE, Prefer="return=representation")
        assert response.status_code == 201, response.text
        assert "state" in response.json()
        assert "Preference-Applied" not in response.headers


class TestWithReturnMinimal:
    def test_answers_201_with_the_event_ids_and_no_state(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, NOTE, **MINIMAL)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"id", "version", "events"}
        assert body["id"] == mid and body["version"] == 2
        assert [(e["type"], e["version"]) for e in body["events"]] == [("note_added", 2)]
        assert response.headers["ETag"] == "2"
        assert response.headers["Location"] == f"/v1/migrations/{mid}"
        assert response.headers["Preference-Applied"] == "return=minimal"
        assert response.headers["Vary"] == "Prefer"

    def test_stores_the_event_as_the_full_answer_would(self, api):
        mid = api.new_migration()["id"]
        assert api.event(mid, NOTE, **MINIMAL).status_code == 201
        state = api.get("admin_a", f"/v1/migrations/{mid}")
        assert state.status_code == 200
        assert state.json()["version"] == 2
        assert _stored_versions(api, mid) == 2

    def test_an_array_answers_every_stored_event_without_the_state(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, [NOTE, ORIGINAL], **MINIMAL)  # type: ignore[arg-type]
        assert response.status_code == 201, response.text
        body = response.json()
        assert "state" not in body
        assert [e["version"] for e in body["events"]] == [2, 3]
        assert response.headers["ETag"] == "3"

    def test_refusals_are_unchanged(self, api):
        mid = api.new_migration()["id"]
        stale = api.event(mid, NOTE, **MINIMAL, **{"If-Match": "7"})
        assert stale.status_code == 412
        assert stale.json()["error"] == "version_conflict"
        assert "Preference-Applied" not in stale.headers
        invalid = api.event(mid, {"type": "note_added", "text": ""}, **MINIMAL)
        assert invalid.status_code == 422
        assert set(invalid.json()) == {"error", "message", "details"}
        assert _stored_versions(api, mid) == 1

    def test_among_other_preferences_and_in_any_case(self, api):
        mid = api.new_migration()["id"]
        response = api.event(mid, NOTE, Prefer='respond-async, RETURN="Minimal"; x=1')
        assert response.status_code == 201, response.text
        assert "state" not in response.json()
        assert response.headers["Preference-Applied"] == "return=minimal"


class TestWithAnIdempotencyKey:
    def test_a_retry_without_prefer_gets_the_whole_first_answer(self, api):
        mid = api.new_migration()["id"]
        key = {"Idempotency-Key": "note-1"}
        first = api.event(mid, NOTE, **MINIMAL, **key)
        assert first.status_code == 201, first.text
        assert "state" not in first.json()
        retry = api.event(mid, NOTE, **key)
        assert retry.status_code == 201, retry.text
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json()["state"]["version"] == 2
        assert {k: retry.json()[k] for k in ("id", "version", "events")} == first.json()
        assert _stored_versions(api, mid) == 2

    def test_a_minimal_retry_gets_the_first_answer_without_the_state(self, api):
        mid = api.new_migration()["id"]
        key = {"Idempotency-Key": "note-2"}
        first = api.event(mid, NOTE, **key)
        assert first.status_code == 201, first.text
        retry = api.event(mid, NOTE, **MINIMAL, **key)
        assert retry.status_code == 201, retry.text
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.headers["Preference-Applied"] == "return=minimal"
        assert retry.json() == {k: first.json()[k] for k in ("id", "version", "events")}
        assert _stored_versions(api, mid) == 2


class TestIgnored:
    @pytest.mark.parametrize(
        "prefer",
        ["return=minimalist", "return", "respond-async", ';;,,"', "handling=strict", "a" * 8000],
    )
    def test_other_or_malformed_preferences_get_the_whole_answer(self, api, prefer):
        mid = api.new_migration()["id"]
        response = api.event(mid, NOTE, Prefer=prefer)
        assert response.status_code == 201, response.text
        assert response.json()["state"]["version"] == 2
        assert "Preference-Applied" not in response.headers


@pytest.mark.parametrize(
    ("header", "minimal"),
    [
        ("return=minimal", True),
        ("Return=MINIMAL", True),
        ('return="minimal"', True),
        ("return = minimal", True),
        (" , return=minimal,", True),
        ("wait=10; a=1, return=minimal", True),
        ('foo="x, return=minimal", return=minimal', True),
        # The first `return` counts (RFC 7240, section 2).
        ("return=representation, return=minimal", False),
        ("return=minimal, return=representation", True),
        # Inside a quoted string or a parameter, it is not a preference.
        ('foo="a, return=minimal"', False),
        ("foo; return=minimal", False),
        ("return=minimalist", False),
        ("return", False),
        ("", False),
        (None, False),
        ('"\\', False),
    ],
)
def test_prefers_minimal_reads_rfc_7240_preferences(header, minimal):
    assert prefers_minimal(header) is minimal


def test_prefers_minimal_is_linear_on_long_headers():
    # A backtracking parser took 30 s on 50,000 spaces; this must be instant.
    for header in ["a" + " " * 200_000 + "b", 'a;"' * 50_000, "\\" * 200_000]:
        assert prefers_minimal(header) is False


def test_the_schema_documents_the_header_and_both_answers(api):
    operation = api.client.get("/openapi.json").json()["paths"][
        "/v1/migrations/{migration_id}/events"
    ]["post"]
    assert "prefer" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    created = operation["responses"]["201"]
    assert {"ETag", "Location", "Preference-Applied"} <= set(created["headers"])
    assert created["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Recorded"
    }
    recorded = api.client.get("/openapi.json").json()["components"]["schemas"]["Recorded"]
    assert "state" not in recorded["required"]
    assert recorded["properties"]["state"]["$ref"] == "#/components/schemas/MigrationState"
