"""Fault fixtures: a real uvicorn server (bench.server.serving) on the parametrised store.

Keys and partners are issued in the test process before the server starts; every HTTP call
has a timeout, every wait a deadline, and only loopback addresses are used.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from domain.access import issue_key
from domain.application import Tracker
from tests.api.conftest import SEED

PARTNER = "fabrikam"
HTTP_TIMEOUT = 15.0
READY_TIMEOUT = 30.0


@dataclass
class Keys:
    admin: str
    auditor: str

    def headers(self, who: str = "admin", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, who)}", **extra}


def prepare_store(store_env: dict[str, str]) -> Keys:
    """Register the partner and issue an admin and an auditor key straight into the store."""
    tracker = Tracker(env=store_env)
    try:
        tracker.register_partner(PARTNER, "Fabrikam", "europe")
        return Keys(
            admin=issue_key(tracker, "faults-admin", "account_admin", PARTNER).token,
            auditor=issue_key(tracker, "faults-auditor", "auditor", None).token,
        )
    finally:
        tracker.close()


@pytest.fixture
def keys(store_env: dict[str, str]) -> Keys:
    return prepare_store(store_env)


@pytest.fixture
def postgres_only(store_env: dict[str, str]) -> dict[str, str]:
    """The PostgreSQL half of `store_env` (the SQLite half skips: a PostgreSQL-only fault)."""
    if store_env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        pytest.skip("a PostgreSQL fault: SQLite is one process per file")
    return store_env


def client(url: str, keys: Keys, connections: int = 32) -> httpx.Client:
    """A thread-safe client with enough connections for every writer at once."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(base_url=url, headers=keys.headers(), timeout=HTTP_TIMEOUT, limits=limits)


def new_migration(http: httpx.Client, **overrides: Any) -> dict[str, Any]:
    tenant = f"t{uuid.uuid4().hex[:10]}.onmicrosoft.com"
    response = http.post("/v1/migrations", json={**SEED, "tenant_id": tenant, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def note(text: str) -> dict[str, str]:
    return {"type": "note_added", "text": text}


def wait_caught_up(http: httpx.Client, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    """Until /readyz is 200 and no view lags the store's head."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = http.get("/readyz", timeout=5)
            body = response.json()
            if response.status_code == 200 and not any(v["lag"] for v in body["views"].values()):
                return body
        except httpx.HTTPError:
            body = None
        assert time.monotonic() < deadline, f"views did not catch up: {body}"
        time.sleep(0.1)


@dataclass
class Outcome:
    """What one client saw for one request (status None: no response at all)."""

    label: str
    status: int | None = None
    body: Any = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def stored_notes(store_env: dict[str, str], migration_id: str) -> list[tuple[int, str, str]]:
    """(version, text, correlation id) of every note in the store's history of a migration,
    and asserts the history's versions are contiguous from 1."""
    tracker = Tracker(env=store_env)
    try:
        events = tracker.history(uuid.UUID(migration_id))
    finally:
        tracker.close()
    versions = [e.originator_version for e in events]
    assert versions == list(range(1, len(events) + 1)), versions
    return [(e.originator_version, e.text, e.correlation_id) for e in events if hasattr(e, "text")]
