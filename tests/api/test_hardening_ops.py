"""Hardening, items 8 and 10: global figures kept from partners, and revocation at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api import deps
from api.deps import is_loopback
from domain.access import revoke_key
from domain.application import Tracker
from projections.heads import Signer
from tests.api.conftest import Api, make_api

METRICS_TOKEN = "scraper-secret-token"


def from_address(api: Api, host: str) -> TestClient:
    """A client of the running app whose requests come from `host` (no second lifespan)."""
    return TestClient(api.client.app, client=(host, 50000))


@pytest.fixture
def tokened(store_env: dict[str, str], tmp_path: Path) -> Iterator[Api]:
    key = tmp_path / "ledger.key"
    Signer.generate(key)
    yield from make_api(store_env, ledger_key=key, metrics_token=METRICS_TOKEN)


class TestMetricsWithoutAToken:
    @pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1"])
    def test_a_loopback_client_is_answered(self, api, host):
        response = from_address(api, host).get("/metrics")
        assert response.status_code == 200, response.text
        assert "csp_http_requests_total" in response.text

    @pytest.mark.parametrize("host", ["203.0.113.7", "10.0.0.2", "2001:db8::1", "testclient"])
    def test_any_other_client_is_refused(self, api, host):
        response = from_address(api, host).get("/metrics")
        assert response.status_code == 403
        body = response.json()
        assert body["error"] == "metrics_loopback_only"
        assert set(body) == {"error", "message", "details"}
        assert "csp_" not in response.text

    def test_a_partner_key_does_not_open_it(self, api):
        response = from_address(api, "203.0.113.7").get("/metrics", headers=api.auth("admin_a"))
        assert response.status_code == 403


class TestMetricsWithAToken:
    def test_the_token_is_answered_from_anywhere(self, tokened):
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        response = from_address(tokened, "203.0.113.7").get("/metrics", headers=auth)
        assert response.status_code == 200, response.text
        assert "csp_http_requests_total" in response.text

    @pytest.mark.parametrize(
        "header",
        [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x", "Bearer "],
    )
    def test_anything_else_is_401_even_from_loopback(self, tokened, header):
        headers = {} if header is None else {"Authorization": header}
        response = from_address(tokened, "127.0.0.1").get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"

    def test_an_api_key_is_not_the_metrics_token(self, tokened):
        for who in ("admin_a", "auditor"):
            response = from_address(tokened, "127.0.0.1").get("/metrics", headers=tokened.auth(who))
            assert response.status_code == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("localhost", False),
        ("testclient", False),
        ("", False),
        (None, False),
    ],
)
def test_which_addresses_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


class TestReadyz:
    def test_the_body_is_the_status_and_each_views_lag_only(self, api):
        api.new_migration()
        api.settle()
        response = api.client.get("/readyz")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"status", "views", "projector"}
        assert body["status"] == "ready"
        assert body["projector"] == "active"  # the only process on this store
        assert set(body["views"]) == {"migrations", "audit", "summary", "ledger"}
        assert all(view == {"lag": 0} for view in body["views"].values())

    def test_not_ready_shows_the_lag_but_no_head_or_position(self, store_env, tmp_path):
        key = tmp_path / "ledger.key"
        Signer.generate(key)
        for lagging in make_api(store_env, ledger_key=key, max_lag=0, run_projections=False):
            lagging.new_migration()
            response = lagging.client.get("/readyz")
            assert response.status_code == 503
            details = response.json()["details"]
            assert set(details) == {"views", "max_lag", "projector"}
            assert details["projector"] == "off"  # run_projections=False
            assert all(set(view) == {"lag"} for view in details["views"].values())
            assert details["views"]["audit"]["lag"] > 0


class TestRevocation:
    def test_a_key_revoked_by_another_process_is_refused_at_the_next_request(self, api, store_env):
        assert api.get("admin_a", "/v1/migrations").status_code == 200  # cached now
        other = Tracker(env=store_env)  # as `csp-tracker keys revoke` would, elsewhere
        try:
            revoke_key(other, "admin-a")
        finally:
            other.close()
        response = api.get("admin_a", "/v1/migrations")
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert api.get("admin_b", "/v1/migrations").status_code == 200

    def test_a_key_revoked_in_this_process_is_refused_at_the_next_request(self, api):
        assert api.get("sales_a", "/v1/migrations").status_code == 200
        revoke_key(api.tracker, "sales-a")
        assert api.get("sales_a", "/v1/migrations").status_code == 401

    def test_own_appends_are_not_searched_for_key_events(self, api, monkeypatch):
        # Given a cached key, when this process appends between lookups, then no lookup
        # searches the store for key events: every event since the last one is its own.
        migration_id = api.new_migration()["id"]
        assert api.get("admin_a", "/v1/migrations").status_code == 200
        searches: list[tuple] = []
        recorder = api.tracker.recorder
        real = recorder.select_notifications

        def counting(*args, **kwargs):
            if kwargs.get("topics"):
                searches.append((args, kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(recorder, "select_notifications", counting)
        for n in range(3):
            assert (
                api.event(migration_id, {"type": "note_added", "text": f"{n}"}).status_code == 201
            )
            assert api.get("admin_a", "/v1/migrations").status_code == 200
        assert searches == []

    def test_a_revocation_between_own_appends_is_refused_at_the_next_request(self, api, store_env):
        # Given a cached key and the store's log: own append, another process's revocation,
        # own append; when the key is used, then it is refused (the range is not all own).
        migration_id = api.new_migration()["id"]
        assert api.get("admin_a", "/v1/migrations").status_code == 200
        api.event(migration_id, {"type": "note_added", "text": "before"}, who="sales_a")
        other = Tracker(env=store_env)
        try:
            revoke_key(other, "admin-a")
        finally:
            other.close()
        api.event(migration_id, {"type": "note_added", "text": "after"}, who="sales_a")
        response = api.get("admin_a", "/v1/migrations")
        assert response.status_code == 401
        assert api.get("admin_b", "/v1/migrations").status_code == 200

    def test_a_revocation_committed_between_an_own_commit_and_its_report(self, api, store_env):
        # Given another process revoking a key just after this process's commit and before
        # this process has noted that commit, then the key is refused at its next request.
        migration_id = api.new_migration()["id"]
        assert api.get("admin_a", "/v1/migrations").status_code == 200
        fired: list[int] = []

        def revoke_elsewhere(recordings):
            if fired:
                return
            fired.append(1)
            other = Tracker(env=store_env)
            try:
                revoke_key(other, "admin-a")
            finally:
                other.close()

        # Runs after the own commit, among its save's hooks.
        api.tracker.on_saved.insert(0, revoke_elsewhere)
        r = api.event(migration_id, {"type": "note_added", "text": "x"}, who="sales_a")
        assert r.status_code == 201 and fired
        api.tracker.on_saved.remove(revoke_elsewhere)
        r = api.event(migration_id, {"type": "note_added", "text": "y"}, who="sales_a")
        assert r.status_code == 201
        assert api.get("admin_a", "/v1/migrations").status_code == 401
        assert api.event(migration_id, {"type": "note_added", "text": "z"}).status_code == 401

    def test_the_cache_holds_while_only_other_events_are_written(self, api, monkeypatch):
        loads: list[str] = []
        real = deps.authenticate

        def counting(tracker, token):
            loads.append(token)
            return real(tracker, token)

        monkeypatch.setattr(deps, "authenticate", counting)
        api.client.app.state.keys.clear()
        for n in range(3):
            api.new_migration("admin_a", tenant_id=f"t{n}.onmicrosoft.com")
            assert api.get("admin_a", "/v1/migrations").status_code == 200
        assert loads == [api.tokens["admin_a"]]  # loaded once; writes did not evict it


class TestAPostHeldUpPastItsDeadline:
    """Given the store held up (the committer's turn held: the appender's writer waits in its
    save), when a single post waits past CSP_TRACKER_APPEND_DEADLINE_SECONDS, then it is
    answered 503 append_timeout in the error shape and never recorded."""

    @pytest.fixture
    def quick(self, store_env: dict[str, str], tmp_path: Path) -> Iterator[Api]:
        key = tmp_path / "ledger.key"
        Signer.generate(key)
        yield from make_api(store_env, ledger_key=key, append_deadline_seconds=7.5)

    def test_the_post_is_refused_and_not_stored(self, quick):
        first, second = quick.new_migration(), quick.new_migration(tenant_id="b.onmicrosoft.com")
        tracker, appender = quick.tracker, quick.client.app.state.appender
        assert appender.deadline == 7.5  # the setting
        answers: dict[str, Any] = {}

        def post(name: str, migration: dict) -> threading.Thread:
            def send() -> None:
                answers[name] = quick.event(migration["id"], {"type": "note_added", "text": name})

            thread = threading.Thread(target=send)
            thread.start()
            return thread

        with tracker.commits.turn():
            held = post("held", first)
            deadline = time.monotonic() + 10
            while tracker.commits.queued != 1:  # the writer's batch waits for the turn
                assert time.monotonic() < deadline
                time.sleep(0.005)
            appender.deadline = 0.3  # only now: the held post is the writer's already
            late = post("late", second)  # queued behind it: refused at its deadline
            late.join(timeout=10)
            assert not late.is_alive()
        held.join(timeout=10)
        assert answers["late"].status_code == 503
        assert answers["late"].json()["error"] == "append_timeout"
        assert answers["held"].status_code == 201  # taken before its deadline: recorded
        assert tracker.get(UUID(second["id"])).version == second["version"]
