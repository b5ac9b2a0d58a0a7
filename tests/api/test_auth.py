"""Who may call what: keys, partner isolation, read-only auditors."""

from __future__ import annotations

import pytest

from domain.access import issue_key, list_keys, revoke_key
from tests.api.conftest import ACCEPTED, SEED

READS = ["", "/history"]


class TestWithoutAValidKey:
    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}],
        ids=["missing", "unknown", "wrong-scheme"],
    )
    def test_every_v1_route_is_401(self, api, headers):
        for method, url in [
            ("POST", "/v1/migrations"),
            ("GET", "/v1/migrations"),
            ("GET", "/v1/migrations/00000000-0000-0000-0000-000000000000"),
            ("GET", "/v1/audit"),
            ("GET", "/v1/audit/verify"),
            ("GET", "/v1/dashboard/summary"),
        ]:
            response = api.client.request(method, url, headers=headers, json=SEED)
            assert response.status_code == 401, (method, url)
            assert response.json()["error"] == "unauthorized"

    def test_a_revoked_key_is_401(self, api):
        revoke_key(api.tracker, "sales-a")
        api.client.app.state.keys.clear()
        assert api.post("sales_a", "/v1/migrations", SEED).status_code == 401

    def test_health_needs_no_key(self, api):
        assert api.client.get("/healthz").json() == {"status": "ok"}


class TestPartnerIsolation:
    def test_partner_b_cannot_read_partner_a_migration(self, api):
        migration_id = api.new_migration()["id"]
        response = api.get("admin_b", f"/v1/migrations/{migration_id}")
        assert response.status_code == 404
        assert response.json()["error"] == "migration_not_found"

    def test_partner_b_cannot_read_it_as_of_a_time(self, api):
        migration_id = api.new_migration()["id"]
        url = f"/v1/migrations/{migration_id}"
        response = api.get("admin_b", url, params={"as_of": "2030-01-01T00:00:00Z"})
        assert response.status_code == 404

    def test_partner_b_cannot_write_to_partner_a_migration(self, api):
        migration_id = api.new_migration()["id"]
        response = api.event(migration_id, ACCEPTED, who="admin_b")
        assert response.status_code == 404
        assert response.json()["error"] == "migration_not_found"
        assert api.get("admin_a", f"/v1/migrations/{migration_id}").json()["version"] == 1

    def test_a_partner_bound_auditor_sees_only_its_partner(self, api):
        migration_id = api.new_migration()["id"]
        assert api.get("auditor_b", f"/v1/migrations/{migration_id}").status_code == 404
        assert api.get("auditor", f"/v1/migrations/{migration_id}").status_code == 200


class TestAuditorsAreReadOnly:
    @pytest.mark.parametrize("who", ["auditor", "auditor_b"])
    def test_cannot_request_a_relationship(self, api, who):
        response = api.post(who, "/v1/migrations", SEED)
        assert response.status_code == 403
        assert response.json()["error"] == "read_only"

    def test_cannot_record_events(self, api):
        migration_id = api.new_migration()["id"]
        response = api.event(migration_id, ACCEPTED, who="auditor")
        assert response.status_code == 403
        assert response.json()["error"] == "read_only"


class TestKeys:
    def test_only_the_hash_is_stored(self, api):
        key = next(k for k in list_keys(api.tracker) if k.name == "sales-a")
        assert api.tokens["sales_a"] not in repr(vars(key))
        assert len(key.token_sha256) == 64

    def test_names_are_unique(self, api):
        from domain.errors import Conflict

        with pytest.raises(Conflict):
            issue_key(api.tracker, "sales-a", "sales_agent", "fabrikam")

    def test_partner_roles_need_a_partner(self, api):
        from domain.errors import InvalidInput

        with pytest.raises(InvalidInput):
            issue_key(api.tracker, "loose", "sales_agent", None)


class TestKeyOrderOnRecordEvent:
    """POST .../events looks its key up in the route's own worker thread (one threadpool hop):
    an unknown key is 401 before the body and If-Match, but after the headers FastAPI checks."""

    def test_an_unknown_key_is_401_before_a_bad_body_or_if_match(self, api):
        mid = api.new_migration()["id"]
        unknown = {"Authorization": "Bearer csp_unknown"}
        for body, headers in [
            ({"type": "note_added", "text": ""}, {}),
            ({"type": "note_added", "text": "a"}, {"If-Match": "zz"}),
        ]:
            response = api.client.post(
                f"/v1/migrations/{mid}/events", json=body, headers={**unknown, **headers}
            )
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "unauthorized"

    def test_a_header_fastapi_refuses_is_422_before_the_key_is_looked_up(self, api):
        mid = api.new_migration()["id"]
        response = api.client.post(
            f"/v1/migrations/{mid}/events",
            json={"type": "note_added", "text": "a"},
            headers={"Authorization": "Bearer csp_unknown", "Idempotency-Key": "x" * 201},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "validation_error"
