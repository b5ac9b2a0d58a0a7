"""A client generated from our OpenAPI schema reads well and works (issue 10, item 16).

Partner tools generate their client with `openapi-python-client` 0.29. The schema is generated
into a package once per session, with no warnings; operations are named like `record_event`,
event bodies need no `type_` (each model defaults it to its literal), and the client walks the
four steps of a migration against a real server, on both stores.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest

from api.app import create_app
from api.settings import Settings
from bench.server import serving
from domain.access import issue_key
from domain.application import Tracker

pytest.importorskip("openapi_python_client")

BIN = Path(sys.executable).parent
PACKAGE = "csp_tracker_client"


class Client:
    """The generated package: its modules by dotted name below the package."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __getitem__(self, name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    @property
    def models(self) -> ModuleType:
        return self["models"]


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str]]:
    """Generate the client once: (the package, the generator's output)."""
    where = tmp_path_factory.mktemp("client")
    schema = create_app(Settings(demo_on_empty=False), env={}).openapi()
    (where / "openapi.json").write_text(json.dumps(schema))
    # The generator formats its output with ruff (a test dependency) from PATH.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            "openapi.json",
            "--output-path",
            PACKAGE,
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(where))
    try:
        yield Client(where / PACKAGE), output
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_the_generator_warns_of_nothing(generated):
    _, output = generated
    assert "warning" not in output.lower(), output


def test_operations_and_models_have_plain_names(generated):
    client, _ = generated
    operations = {
        path.stem for path in (client.root / "api").rglob("*.py") if path.stem != "__init__"
    }
    assert {
        "request_relationship",
        "record_event",
        "get_migration",
        "list_migrations",
        "get_dashboard_summary",
    } <= operations
    assert all(len(name) <= 32 and "v1" not in name.split("_") for name in operations)
    models = client.models
    assert {"Recorded", "MigrationState", "DashboardSummary", "Region"} <= set(dir(models))
    assert not [name for name in dir(models) if "Response" in name or "V1" in name]


def test_event_bodies_fill_in_their_type(generated):
    client, _ = generated
    models = client.models
    note = models.NoteAdded(text="hello")
    assert note.to_dict() == {"type": "note_added", "text": "hello"}
    cancelled = models.OriginalSubscriptionCancelled(
        subscription_id="orig-1",
        cancelled_by=models.OriginalSubscriptionCancelledCancelledBy.CUSTOMER,
    )
    assert cancelled.to_dict()["type"] == "original_subscription_cancelled"


def _four_steps(models: ModuleType) -> list[Any]:
    return [
        models.OriginalSubscriptionRecorded(
            subscription_id="orig-1",
            offer_id="O365_E3",
            offer_name="Office 365 E3",
            licenses=25,
            term_end=date(2027, 1, 31),
            purchased_via=models.OriginalSubscriptionRecordedPurchasedVia.M365_ADMIN_PORTAL,
            billing_cycle=models.OriginalSubscriptionRecordedBillingCycle.ANNUAL,
        ),
        models.InvitationAccepted(accepted_by="admin@contoso.com"),
        models.SubscriptionProvisioned(
            subscription_id="csp-1",
            replaces="orig-1",
            offer_id="O365_E3",
            offer_name="Office 365 E3",
            licenses=25,
        ),
        models.OriginalSubscriptionCancelled(
            subscription_id="orig-1",
            cancelled_by=models.OriginalSubscriptionCancelledCancelledBy.CUSTOMER,
        ),
    ]


def test_a_generated_client_walks_the_four_steps(generated, store_env):
    client, _ = generated
    models = client.models
    tracker = Tracker(env=store_env)
    try:
        tracker.register_partner("fabrikam", "Fabrikam", "europe")
        token = issue_key(tracker, "generated-client", "account_admin", "fabrikam").token
    finally:
        tracker.close()
    request_relationship = client["api.migrations.request_relationship"]
    record_event = client["api.migrations.record_event"]
    get_migration = client["api.migrations.get_migration"]

    with (
        serving(store_env) as (url, _),
        client["client"].AuthenticatedClient(base_url=url, token=token, timeout=30.0) as http,
    ):
        body = models.RelationshipRequest(
            tenant_id="contoso.onmicrosoft.com",
            customer_name="Contoso Ltd",
            customer_region=models.Region.EUROPE,
            channel=models.RelationshipRequestChannel.DIRECT,
        )
        response = request_relationship.sync_detailed(client=http, body=body)
        assert response.status_code == 201, response.content
        recorded = response.parsed
        assert isinstance(recorded, models.Recorded)
        migration_id = UUID(recorded.id)
        for event in _four_steps(models):
            response = record_event.sync_detailed(
                migration_id, client=http, body=event, if_match=str(recorded.version)
            )
            assert response.status_code == 201, response.content
            recorded = response.parsed
            assert isinstance(recorded, models.Recorded)
        assert recorded.state.stage == "completed"
        assert [e.type_ for e in recorded.events][-1] == "migration_completed"

        state = get_migration.sync(migration_id, client=http)
        assert isinstance(state, models.MigrationState)
        assert state.stage == "completed"
        assert state.version == recorded.version

        # A refusal parses as the error model.
        stale = record_event.sync_detailed(
            migration_id, client=http, body=models.NoteAdded(text="late"), if_match="1"
        )
        assert stale.status_code == 412
        assert isinstance(stale.parsed, models.ErrorBody)
        assert stale.parsed.error == "version_conflict"


def test_a_generated_client_sends_batches(generated, store_env):
    """The array form of record_event, and record_batch with its per-item results."""
    client, _ = generated
    models = client.models
    tracker = Tracker(env=store_env)
    try:
        tracker.register_partner("fabrikam", "Fabrikam", "europe")
        token = issue_key(tracker, "generated-client", "account_admin", "fabrikam").token
    finally:
        tracker.close()
    request_relationship = client["api.migrations.request_relationship"]
    record_event = client["api.migrations.record_event"]
    record_batch = client["api.migrations.record_batch"]

    with (
        serving(store_env) as (url, _),
        client["client"].AuthenticatedClient(base_url=url, token=token, timeout=30.0) as http,
    ):
        body = models.RelationshipRequest(
            tenant_id="contoso.onmicrosoft.com",
            customer_name="Contoso Ltd",
            customer_region=models.Region.EUROPE,
            channel=models.RelationshipRequestChannel.DIRECT,
        )
        opened = request_relationship.sync(client=http, body=body)
        assert isinstance(opened, models.Recorded)
        migration_id = UUID(opened.id)

        response = record_event.sync_detailed(
            migration_id, client=http, body=_four_steps(models), if_match="1"
        )
        assert response.status_code == 201, response.content
        recorded = response.parsed
        assert isinstance(recorded, models.Recorded)
        assert [e.type_ for e in recorded.events][-1] == "migration_completed"
        assert recorded.version == 6

        items = [
            models.BatchItem(migration_id=migration_id, event=models.NoteAdded(text="synced")),
            models.BatchItem(migration_id=UUID(int=0), event=models.NoteAdded(text="nowhere")),
        ]
        results = record_batch.sync(client=http, body=items)
        assert isinstance(results, models.BatchResults)
        stored, refused = results.items
        assert isinstance(stored, models.StoredItem) and stored.version == 7
        assert isinstance(refused, models.RefusedItem)
        assert (refused.status, refused.error) == (404, "migration_not_found")
