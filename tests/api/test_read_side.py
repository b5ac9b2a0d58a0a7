"""Lists, audit trail, export, verification and the dashboard: served from the views."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.api.conftest import ACCEPTED, CANCELLED, ORIGINAL, PROVISIONED, SEED


def _complete(api, migration_id: str) -> None:
    for body in (ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED):
        assert api.event(migration_id, body).status_code == 201


@pytest.fixture
def stocked(api):
    """Partner A: a completed Contoso and an invited Litware; partner B: one Contoso."""
    contoso = api.new_migration()["id"]
    _complete(api, contoso)
    litware = api.new_migration(tenant_id="litware.onmicrosoft.com", customer_name="Litware Inc")[
        "id"
    ]
    api.event(litware, {**ORIGINAL, "term_end": "2026-12-01"})
    other = api.new_migration("admin_b")["id"]
    api.settle()
    api.ids = {"contoso": contoso, "litware": litware, "other": other}
    return api


class TestListingMigrations:
    def test_a_partner_sees_only_its_own(self, stocked):
        ids = {m["id"] for m in stocked.get("admin_a", "/v1/migrations").json()["items"]}
        assert ids == {stocked.ids["contoso"], stocked.ids["litware"]}

    def test_a_partner_cannot_widen_with_partner_id(self, stocked):
        # Changed by the hardening issue: 403 instead of silently its own rows.
        response = stocked.get("admin_a", "/v1/migrations", params={"partner_id": "northwind"})
        assert response.status_code == 403
        assert response.json()["error"] == "partner_scope"
        summary = stocked.get(
            "admin_a", "/v1/dashboard/summary", params={"partner_id": "northwind"}
        )
        assert summary.status_code == 403

    def test_an_auditor_sees_all_partners(self, stocked):
        assert len(stocked.get("auditor", "/v1/migrations").json()["items"]) == 3

    def test_items_have_the_describe_shape(self, stocked):
        response = stocked.get("admin_a", "/v1/migrations", params={"stage": "completed"})
        (item,) = response.json()["items"]
        direct = stocked.get("admin_a", f"/v1/migrations/{item['id']}").json()
        assert item == direct

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"stage": "invited"}, {"litware"}),
            ({"tenant_id": "contoso.onmicrosoft.com"}, {"contoso"}),
            ({"q": "litw"}, {"litware"}),
            ({"term_end_before": "2026-12-31"}, {"litware"}),
            ({"risk": "early_cancellation"}, {"contoso"}),
        ],
    )
    def test_filters(self, stocked, params, expected):
        response = stocked.get("admin_a", "/v1/migrations", params=params)
        assert response.status_code == 200
        names = {
            k for k, v in stocked.ids.items() if v in {m["id"] for m in response.json()["items"]}
        }
        assert names == expected

    def test_cursor_pagination_visits_every_item_once(self, stocked):
        seen, cursor = [], None
        while True:
            params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = stocked.get("auditor", "/v1/migrations", params=params).json()
            seen += [m["id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(stocked.ids.values())

    @pytest.mark.parametrize("limit", [0, 501, "many"])
    def test_limit_out_of_range_is_422(self, stocked, limit):
        response = stocked.get("auditor", "/v1/migrations", params={"limit": limit})
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"


class TestHistoryAndAudit:
    def test_history_lists_the_migration_events_in_order(self, stocked):
        url = f"/v1/migrations/{stocked.ids['contoso']}/history"
        rows = stocked.get("admin_a", url).json()["items"]
        assert [r["event_type"] for r in rows] == [
            "relationship_requested",
            "original_subscription_recorded",
            "invitation_accepted",
            "subscription_provisioned",
            "original_subscription_cancelled",
            "migration_completed",
        ]

    def test_history_of_another_partner_is_404(self, stocked):
        url = f"/v1/migrations/{stocked.ids['contoso']}/history"
        assert stocked.get("admin_b", url).status_code == 404

    def test_audit_is_limited_to_the_key_partner(self, stocked):
        rows = stocked.get("admin_b", "/v1/audit").json()["items"]
        assert {r["partner_id"] for r in rows} == {"northwind"}

    def test_audit_filters_and_pages(self, stocked):
        params = {"event_type": "relationship_requested", "limit": 2}
        first = stocked.get("auditor", "/v1/audit", params=params).json()
        assert len(first["items"]) == 2
        rest = stocked.get(
            "auditor", "/v1/audit", params={**params, "cursor": first["next_cursor"]}
        ).json()
        assert len(rest["items"]) == 1
        assert rest["next_cursor"] is None

    def test_audit_by_principal_and_descending(self, stocked):
        params = {"by": "sales-a", "order": "desc"}
        rows = stocked.get("auditor", "/v1/audit", params=params).json()["items"]
        assert {r["principal"] for r in rows} == {"sales-a"}
        positions = [r["position"] for r in rows]
        assert positions == sorted(positions, reverse=True)

    def test_malformed_cursor_is_422(self, stocked):
        response = stocked.get("auditor", "/v1/audit", params={"cursor": "abc"})
        assert response.status_code == 422


class TestExportAndVerify:
    def test_csv_export_streams_every_row(self, stocked):
        with stocked.client.stream(
            "GET", "/v1/audit/export", params={"format": "csv"}, headers=stocked.auth("auditor")
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/csv")
            text = "".join(response.iter_text())
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 9
        assert rows[0]["event_type"] == "relationship_requested"

    def test_jsonl_export_for_a_partner(self, stocked):
        response = stocked.get("admin_b", "/v1/audit/export", params={"format": "jsonl"})
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert [line["partner_id"] for line in lines] == ["northwind"]

    def test_unknown_format_is_422(self, stocked):
        response = stocked.get("auditor", "/v1/audit/export", params={"format": "xml"})
        assert response.status_code == 422

    def test_verify_reports_an_intact_chain(self, stocked):
        result = stocked.get("auditor", "/v1/audit/verify").json()
        assert result["ok"] is True, result["failures"]
        assert result["views"]["audit"]["rows_checked"] == 9
        assert result["events_verified"] == result["events_in_store"]


class TestDashboard:
    def test_summary_counts_stages(self, stocked):
        summary = stocked.get("auditor", "/v1/dashboard/summary").json()
        assert summary["overall"]["migrations"] == 3
        assert summary["overall"]["stages"]["completed"] == 1

    def test_a_partner_sees_its_own_numbers(self, stocked):
        summary = stocked.get("admin_b", "/v1/dashboard/summary").json()
        assert summary["overall"]["migrations"] == 1
        assert set(summary["partners"]) == {"northwind"}


class TestHealth:
    def test_ready_when_views_are_caught_up(self, stocked):
        response = stocked.client.get("/readyz")
        assert response.status_code == 200
        assert set(response.json()["views"]) == {"migrations", "audit", "summary", "ledger"}

    def test_metrics_count_requests_events_and_lag(self, stocked):
        from fastapi.testclient import TestClient

        # /metrics answers loopback clients only (no token set): speak from 127.0.0.1.
        local = TestClient(stocked.client.app, client=("127.0.0.1", 50000))
        text = local.get("/metrics").text
        assert 'csp_events_appended_total{type="migration_completed"} 1.0' in text
        assert 'route="/v1/migrations/{migration_id}/events",status="201"' in text
        assert "csp_http_request_duration_seconds_bucket" in text
        assert 'csp_projection_lag_events{view="audit"}' in text
        figures = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("csp_appender_")
        }
        # The stock's single posts went through the appender, none is waiting.
        assert figures["csp_appender_posts_total"] >= figures["csp_appender_batches_total"] > 0
        assert figures["csp_appender_queued"] == 0
        assert figures["csp_appender_withdrawn_total"] == 0

    def test_unknown_route_is_404_in_the_error_shape(self, stocked):
        response = stocked.client.get("/v2/nothing")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_not_ready_when_a_view_lags_beyond_the_limit(store_env):
    from tests.api.conftest import make_api

    for api in make_api(store_env, max_lag=0, run_projections=False):
        api.new_migration()
        response = api.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"] == "not_ready"
        assert response.json()["details"]["views"]["audit"]["lag"] > 0


def test_seed_request_is_unaffected_by_the_tenant_claims_of_others(api):
    # The same tenant under two partners, then both listed separately.
    api.new_migration()
    api.new_migration("admin_b")
    api.settle()
    assert (
        len(
            api.get("auditor", "/v1/migrations", params={"tenant_id": SEED["tenant_id"]}).json()[
                "items"
            ]
        )
        == 2
    )


class TestWhenTheStoreIsUnreachable:
    def test_requests_get_503_store_unavailable(self, api, monkeypatch):
        from eventsourcing.persistence import OperationalError

        def down(*args, **kwargs):
            raise OperationalError("connection refused")

        migration_id = api.new_migration()["id"]
        monkeypatch.setattr(api.tracker, "get", down)
        response = api.get("admin_a", f"/v1/migrations/{migration_id}")
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"

    def test_readyz_is_503(self, api, monkeypatch):
        import psycopg

        def down():
            raise psycopg.OperationalError("gone")

        monkeypatch.setattr(api.tracker.recorder, "max_notification_id", down)
        response = api.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
