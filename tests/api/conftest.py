"""API fixtures: an app on the parametrised store, two partners, and keys for each role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from domain.access import issue_key
from projections.heads import Signer

PARTNER_A = "fabrikam"
PARTNER_B = "northwind"

SEED = {
    "tenant_id": "contoso.onmicrosoft.com",
    "customer_name": "Contoso Ltd",
    "customer_region": "europe",
    "channel": "direct",
    "multi_partner": False,
}
ORIGINAL = {
    "type": "original_subscription_recorded",
    "subscription_id": "orig-1",
    "offer_id": "O365_E3",
    "offer_name": "Office 365 E3",
    "licenses": 25,
    "term_end": "2027-01-31",
    "purchased_via": "m365_admin_portal",
    "billing_cycle": "annual",
}
ACCEPTED = {"type": "invitation_accepted", "accepted_by": "admin@contoso.com"}
PROVISIONED = {
    "type": "subscription_provisioned",
    "subscription_id": "csp-1",
    "replaces": "orig-1",
    "offer_id": "O365_E3",
    "offer_name": "Office 365 E3",
    "licenses": 25,
}
CANCELLED = {
    "type": "original_subscription_cancelled",
    "subscription_id": "orig-1",
    "cancelled_by": "customer",
}


@dataclass
class Api:
    """One running app and a client per key."""

    client: TestClient
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, who: str, url: str, json: Any = None, **headers: str) -> Any:
        return self.client.post(url, json=json, headers={**self.auth(who), **headers})

    def get(self, who: str, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.auth(who), **kwargs)

    @property
    def tracker(self) -> Any:
        return self.client.app.state.tracker

    def settle(self) -> None:
        """Wait until the views have processed everything stored so far."""
        read_side = self.client.app.state.read_side
        if read_side is not None:
            read_side.wait(timeout=10)

    def new_migration(self, who: str = "sales_a", **overrides: Any) -> dict[str, Any]:
        response = self.post(who, "/v1/migrations", {**SEED, **overrides})
        assert response.status_code == 201, response.text
        return response.json()

    def event(self, migration_id: str, body: dict, who: str = "admin_a", **headers: str) -> Any:
        return self.post(who, f"/v1/migrations/{migration_id}/events", body, **headers)


def make_api(store_env: dict[str, str], **settings: Any) -> Iterator[Api]:
    app = create_app(Settings(demo_on_empty=False, **settings), env=store_env)
    with TestClient(app) as client:
        tracker = app.state.tracker
        tracker.register_partner(PARTNER_A, "Fabrikam", "europe")
        tracker.register_partner(PARTNER_B, "Northwind", "europe")
        tokens = {
            "admin_a": issue_key(tracker, "admin-a", "account_admin", PARTNER_A).token,
            "sales_a": issue_key(tracker, "sales-a", "sales_agent", PARTNER_A).token,
            "billing_a": issue_key(tracker, "billing-a", "billing_agent", PARTNER_A).token,
            "admin_b": issue_key(tracker, "admin-b", "account_admin", PARTNER_B).token,
            "auditor": issue_key(tracker, "auditor", "auditor", None).token,
            "auditor_b": issue_key(tracker, "auditor-b", "auditor", PARTNER_B).token,
        }
        yield Api(client, tokens)


@pytest.fixture
def api(store_env: dict[str, str], tmp_path: Path) -> Iterator[Api]:
    key = tmp_path / "ledger.key"
    Signer.generate(key)
    yield from make_api(store_env, ledger_key=key)
