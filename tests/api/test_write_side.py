"""Recording migrations over HTTP: the write side, on both stores."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from tests.api.conftest import ACCEPTED, CANCELLED, ORIGINAL, PROVISIONED, SEED


def _versions(api, migration_id: str) -> int:
    return len(api.tracker.history(UUID(migration_id)))


class TestWhenRequestingARelationship:
    def test_returns_201_with_id_version_state_and_etag(self, api):
        response = api.post("sales_a", "/v1/migrations", SEED)
        assert response.status_code == 201
        body = response.json()
        assert body["version"] == 1
        assert response.headers["ETag"] == "1"
        assert response.headers["Location"] == f"/v1/migrations/{body['id']}"
        assert body["state"]["stage"] == "invited"
        assert body["state"]["partner_id"] == "fabrikam"
        assert [e["type"] for e in body["events"]] == ["relationship_requested"]

    def test_refuses_region_mismatch_with_422_naming_both_regions(self, api):
        response = api.post("sales_a", "/v1/migrations", {**SEED, "customer_region": "JP"})
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "region_mismatch"
        assert "europe" in body["message"] and "asia_pacific" in body["message"]

    def test_refuses_an_unknown_region_with_422(self, api):
        response = api.post("sales_a", "/v1/migrations", {**SEED, "customer_region": "asia"})
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_customer_region"

    def test_refuses_second_open_migration_with_409_naming_it(self, api):
        first = api.new_migration()
        response = api.post("sales_a", "/v1/migrations", SEED)
        assert response.status_code == 409
        assert response.json()["error"] == "migration_open"
        assert response.json()["details"]["migration_id"] == first["id"]

    def test_another_partner_may_open_one_for_the_same_tenant(self, api):
        api.new_migration()
        assert api.post("admin_b", "/v1/migrations", SEED).status_code == 201

    def test_refuses_malformed_body_with_the_error_shape(self, api):
        response = api.post("sales_a", "/v1/migrations", {**SEED, "channel": "fax"})
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "validation_error"
        assert set(body) == {"error", "message", "details"}
        assert body["details"]["errors"][0]["loc"][-1] == "channel"

    def test_refuses_non_json_body_with_422(self, api):
        response = api.client.post(
            "/v1/migrations",
            content=b"{not json",
            headers={**api.auth("sales_a"), "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"

    def test_refuses_undecodable_body_with_400_in_the_error_shape(self, api):
        response = api.client.post(
            "/v1/migrations",
            content=b"\xff{not json",
            headers={**api.auth("sales_a"), "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_body"

    def test_refuses_naive_occurred_at(self, api):
        body = {**SEED, "occurred_at": "2026-11-02T09:00:00"}
        assert api.post("sales_a", "/v1/migrations", body).status_code == 422

    def test_refuses_occurred_at_in_the_future(self, api):
        future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        response = api.post("sales_a", "/v1/migrations", {**SEED, "occurred_at": future})
        assert response.status_code == 422
        assert response.json()["error"] == "occurred_in_future"

    def test_billing_agent_may_not_request_403(self, api):
        response = api.post("billing_a", "/v1/migrations", SEED)
        assert response.status_code == 403
        assert response.json()["error"] == "role_not_permitted"


class TestWhenRecordingTheFourSeedSteps:
    def test_the_last_step_also_returns_migration_completed(self, api):
        migration_id = api.new_migration()["id"]
        for body in (ORIGINAL, ACCEPTED, PROVISIONED):
            assert api.event(migration_id, body).status_code == 201
        response = api.event(migration_id, CANCELLED)
        assert response.status_code == 201
        body = response.json()
        assert [e["type"] for e in body["events"]] == [
            "original_subscription_cancelled",
            "migration_completed",
        ]
        assert body["version"] == 6
        assert response.headers["ETag"] == "6"
        assert body["state"]["stage"] == "completed"
        assert body["state"]["licenses"] == {"original": 25, "provisioned": 25}
        original = body["state"]["originals"][0]
        assert original["status"] == "cancelled"
        assert original["replaced_by"] == ["csp-1"]

    def test_events_carry_principal_role_and_business_time(self, api):
        migration_id = api.new_migration()["id"]
        response = api.event(migration_id, {**ORIGINAL, "occurred_at": "2026-11-02T09:00:00Z"})
        stored = response.json()["events"][0]
        assert stored["principal"] == "admin-a"
        assert stored["role"] == "account_admin"
        assert stored["occurred_at"].startswith("2026-11-02T09:00:00")
        assert stored["term_end"] == "2027-01-31"

    def test_money_is_a_decimal_string(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        api.event(
            migration_id,
            {"type": "credit_requested", "subscription_id": "orig-1", "requested_by": "customer"},
            who="billing_a",
        )
        response = api.event(
            migration_id,
            {
                "type": "credit_resolved",
                "subscription_id": "orig-1",
                "outcome": "granted",
                "amount": "120.00",
                "currency": "EUR",
            },
            who="billing_a",
        )
        assert response.status_code == 201, response.text
        assert response.json()["events"][0]["amount"] == "120.00"


class TestWhenARuleRefuses:
    def test_provisioning_before_acceptance_is_422_not_accepted(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        response = api.event(migration_id, PROVISIONED)
        assert response.status_code == 422
        assert response.json()["error"] == "not_accepted"
        assert _versions(api, migration_id) == 2

    def test_unknown_subscription_is_404(self, api):
        migration_id = api.new_migration()["id"]
        body = {"type": "original_auto_renew_disabled", "subscription_id": "nope"}
        response = api.event(migration_id, body)
        assert response.status_code == 404
        assert response.json()["error"] == "unknown_subscription"

    def test_accepting_twice_is_409(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ACCEPTED)
        response = api.event(migration_id, ACCEPTED)
        assert response.status_code == 409
        assert response.json()["error"] == "already_accepted"

    def test_recording_on_an_abandoned_migration_is_409(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, {"type": "migration_abandoned", "reason": "chose another"})
        response = api.event(migration_id, ACCEPTED)
        assert response.status_code == 409
        assert response.json()["error"] == "migration_closed"

    def test_abandoning_frees_the_tenant_for_a_new_request(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, {"type": "migration_abandoned", "reason": "chose another"})
        assert api.post("sales_a", "/v1/migrations", SEED).status_code == 201

    def test_unknown_event_type_is_422(self, api):
        migration_id = api.new_migration()["id"]
        response = api.event(migration_id, {"type": "migration_completed"})
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"

    def test_unknown_migration_is_404(self, api):
        response = api.event("00000000-0000-0000-0000-000000000000", ACCEPTED)
        assert response.status_code == 404
        assert response.json()["error"] == "migration_not_found"

    def test_malformed_migration_id_is_422(self, api):
        assert api.event("not-a-uuid", ACCEPTED).status_code == 422


class TestWhenIfMatchIsSent:
    def test_current_version_is_accepted(self, api):
        migration = api.new_migration()
        response = api.event(migration["id"], ACCEPTED, **{"If-Match": '"1"'})
        assert response.status_code == 201
        assert response.headers["ETag"] == "2"

    def test_stale_version_is_412_and_nothing_is_stored(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL, **{"If-Match": "1"})
        response = api.event(migration_id, ACCEPTED, **{"If-Match": "1"})
        assert response.status_code == 412
        assert response.json()["error"] == "version_conflict"
        assert response.json()["details"] == {"expected": 1, "actual": 2}
        assert _versions(api, migration_id) == 2

    def test_garbage_is_422(self, api):
        migration_id = api.new_migration()["id"]
        response = api.event(migration_id, ACCEPTED, **{"If-Match": "yesterday"})
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_if_match"


class TestWhenRetryingWithAnIdempotencyKey:
    def test_a_retry_returns_the_first_response_and_stores_nothing(self, api):
        migration_id = api.new_migration()["id"]
        first = api.event(migration_id, ACCEPTED, **{"Idempotency-Key": "k1"})
        again = api.event(migration_id, ACCEPTED, **{"Idempotency-Key": "k1"})
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert _versions(api, migration_id) == 2

    def test_a_retry_wins_over_a_now_stale_if_match(self, api):
        migration_id = api.new_migration()["id"]
        headers = {"Idempotency-Key": "k2", "If-Match": "1"}
        first = api.event(migration_id, ACCEPTED, **headers)
        assert api.event(migration_id, ACCEPTED, **headers).json() == first.json()

    def test_the_same_key_with_another_body_is_422(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ACCEPTED, **{"Idempotency-Key": "k3"})
        other = {**ACCEPTED, "accepted_by": "someone@else.example"}
        response = api.event(migration_id, other, **{"Idempotency-Key": "k3"})
        assert response.status_code == 422
        assert response.json()["error"] == "idempotency_key_reused"
        assert _versions(api, migration_id) == 2

    def test_a_retried_relationship_request_returns_the_same_migration(self, api):
        first = api.post("sales_a", "/v1/migrations", SEED, **{"Idempotency-Key": "r1"})
        again = api.post("sales_a", "/v1/migrations", SEED, **{"Idempotency-Key": "r1"})
        assert again.status_code == 201
        assert again.json()["id"] == first.json()["id"]

    def test_keys_are_per_api_key(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL, who="admin_a", **{"Idempotency-Key": "shared"})
        response = api.event(migration_id, ACCEPTED, who="sales_a", **{"Idempotency-Key": "shared"})
        assert response.status_code == 201
        assert response.json()["events"][0]["type"] == "invitation_accepted"

    def test_a_refused_request_may_be_retried_after_fixing_the_cause(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        headers = {"Idempotency-Key": "p1"}
        assert api.event(migration_id, PROVISIONED, **headers).status_code == 422
        api.event(migration_id, ACCEPTED)
        assert api.event(migration_id, PROVISIONED, **headers).status_code == 201


class TestCorrelationIds:
    def test_a_sent_id_is_echoed_and_stored(self, api):
        migration_id = api.new_migration()["id"]
        response = api.event(migration_id, ACCEPTED, **{"X-Correlation-ID": "req-42"})
        assert response.headers["X-Correlation-ID"] == "req-42"
        assert response.json()["events"][0]["correlation_id"] == "req-42"

    def test_one_is_generated_when_absent(self, api):
        response = api.post("sales_a", "/v1/migrations", SEED)
        generated = response.headers["X-Correlation-ID"]
        assert len(generated) == 36
        assert response.json()["events"][0]["correlation_id"] == generated

    def test_errors_carry_it_too(self, api):
        response = api.client.get("/v1/migrations", headers={"X-Correlation-ID": "e-1"})
        assert response.status_code == 401
        assert response.headers["X-Correlation-ID"] == "e-1"


class TestReadingOneMigration:
    def test_reads_the_store_with_etag(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        response = api.get("auditor", f"/v1/migrations/{migration_id}")
        assert response.status_code == 200
        assert response.headers["ETag"] == "2"
        assert response.json()["originals"][0]["subscription_id"] == "orig-1"

    def test_as_of_replays_to_that_instant(self, api):
        migration_id = api.new_migration()["id"]
        api.event(migration_id, ORIGINAL)
        between = datetime.now(UTC).isoformat()
        api.event(migration_id, ACCEPTED)
        response = api.get("admin_a", f"/v1/migrations/{migration_id}", params={"as_of": between})
        assert response.status_code == 200
        assert response.json()["version"] == 2
        assert response.json()["stage"] == "invited"
        assert response.headers["ETag"] == "2"

    def test_as_of_before_it_existed_is_404(self, api):
        migration_id = api.new_migration()["id"]
        response = api.get(
            "admin_a", f"/v1/migrations/{migration_id}", params={"as_of": "2020-01-01T00:00:00Z"}
        )
        assert response.status_code == 404
        assert response.json()["error"] == "migration_not_found"

    def test_malformed_as_of_is_422(self, api):
        migration_id = api.new_migration()["id"]
        response = api.get("admin_a", f"/v1/migrations/{migration_id}", params={"as_of": "soon"})
        assert response.status_code == 422


class TestWhenRetriesRace:
    def test_concurrent_retries_store_once_and_all_get_the_first_response(self, api):
        from concurrent.futures import ThreadPoolExecutor

        migration_id = api.new_migration()["id"]

        def attempt(_: int):
            return api.event(migration_id, ACCEPTED, **{"Idempotency-Key": "race"})

        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(attempt, range(6)))
        assert {r.status_code for r in responses} == {201}
        assert len({r.text for r in responses}) == 1
        assert _versions(api, migration_id) == 2

    def test_concurrent_relationship_retries_open_one_migration(self, api):
        from concurrent.futures import ThreadPoolExecutor

        def attempt(_: int):
            return api.post("sales_a", "/v1/migrations", SEED, **{"Idempotency-Key": "open"})

        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(attempt, range(6)))
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["id"] for r in responses}) == 1


class TestAfterARestart:
    def test_keys_and_idempotency_records_survive(self, store_env):
        from fastapi.testclient import TestClient

        from api.app import create_app
        from api.settings import Settings
        from tests.api.conftest import make_api

        api = make_api(store_env)
        first_api = next(api)
        migration_id = first_api.new_migration()["id"]
        first = first_api.event(migration_id, ACCEPTED, **{"Idempotency-Key": "restart"})
        headers = first_api.auth("admin_a")
        api.close()  # leaves the TestClient: the app shuts down

        app = create_app(Settings(demo_on_empty=False), env=store_env)
        with TestClient(app) as client:
            again = client.post(
                f"/v1/migrations/{migration_id}/events",
                json=ACCEPTED,
                headers={**headers, "Idempotency-Key": "restart"},
            )
            assert again.status_code == 201
            assert again.json() == first.json()
            assert len(app.state.tracker.history(UUID(migration_id))) == 2


def test_concurrent_single_posts_are_each_answered_as_alone(api):
    # Many concurrent single posts (the appender batches them), retries of one Idempotency-Key
    # racing each other, If-Match preconditions: the outcomes are those of some
    # one-after-another order.
    mids = [api.new_migration(tenant_id=f"t{i}.onmicrosoft.com")["id"] for i in range(3)]
    rng = random.Random(5)
    plans: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    for n in range(120):
        mid = rng.choice(mids)
        k = rng.randrange(30)
        headers = {"Idempotency-Key": f"key-{k}"} if rng.random() < 0.6 else {}
        text = f"key-{k}" if headers else f"plain-{n}"
        if headers and rng.random() < 0.1:
            text += "-other"  # the key reused with another request
        if rng.random() < 0.2:
            headers["If-Match"] = str(rng.randrange(1, 8))
        plans.append((mid, {"type": "note_added", "text": text}, headers))
    results: list[Any] = [None] * len(plans)

    def worker(offset: int) -> None:
        for i in range(offset, len(plans), 8):
            mid, body, headers = plans[i]
            r = api.event(mid, body, **headers)
            results[i] = (r.status_code, r.json(), r.headers.get("idempotent-replayed"))

    threads = [threading.Thread(target=worker, args=(o,)) for o in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r is not None for r in results)
    statuses = {r[0] for r in results}
    assert statuses <= {201, 412, 422}, statuses
    # Each key stored at most once, and every answer under a key is the first one's.
    first_by_key: dict[str, Any] = {}
    for (_, _, headers), (status, answer, _) in zip(plans, results, strict=True):
        key = headers.get("Idempotency-Key")
        if key is None or status != 201:
            continue
        first_by_key.setdefault(key, answer)
        assert answer == first_by_key[key], key
    stored_texts: dict[str, int] = defaultdict(int)
    for mid in mids:
        for e in api.tracker.history(UUID(mid)):
            if type(e).__name__ == "NoteAdded":
                stored_texts[e.text] += 1
    for key in first_by_key:
        assert stored_texts.get(key, 0) + stored_texts.get(key + "-other", 0) == 1, key
    # Versions answered 201 (not replayed) are distinct per migration and all stored.
    fresh = [r[1] for r in results if r[0] == 201 and r[2] is None]
    seen = {(a["id"], a["version"]) for a in fresh}
    assert len(seen) == len(fresh)
    for mid in mids:
        assert api.tracker.get(UUID(mid)).version == 1 + sum(1 for a in fresh if a["id"] == mid)
