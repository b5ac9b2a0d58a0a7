"""Which Partner Center notifications map to which migration command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.ingest import command_for, customer_guid, relationship_id

AT = datetime(2026, 11, 27, 10, tzinfo=UTC)
CUSTOMER = (
    "https://api.partnercenter.microsoft.com/v1/customers/4B2C1D0E-9F8A-4B7C-8D6E-5F4A3B2C1D0E"
)


def test_the_customer_id_is_the_guid_in_the_uri():
    assert customer_guid(CUSTOMER + "/subscriptions/x") == "4b2c1d0e-9f8a-4b7c-8d6e-5f4a3b2c1d0e"
    assert customer_guid("https://api.partnercenter.microsoft.com/v1/customers/nope") is None


def test_acceptance():
    command = command_for("reseller-relationship-accepted-by-customer", CUSTOMER, AT)
    assert command is not None and command.type == "invitation_accepted"


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("dap-admin-relationship-approved", "dap"),
        ("granular-admin-relationship-approved", "gdap"),
        ("granular-admin-relationship-activated", "gdap"),
    ],
)
def test_approvals_grant_admin_access(event, kind):
    command = command_for(event, CUSTOMER + "/adminrelationships/rel-1", AT)
    assert command is not None and command.type == "admin_access_granted"
    assert command.fields["kind"] == kind
    assert command.fields["relationship_id"] == "rel-1"
    if kind == "gdap":
        assert command.fields["expires_at"] == AT + timedelta(days=730)


@pytest.mark.parametrize(
    "event",
    [
        "dap-admin-relationship-terminated",
        "dap-admin-relationship-terminated-by-microsoft",
        "granular-admin-relationship-terminated",
        "granular-admin-relationship-expired",
    ],
)
def test_endings_remove_admin_access(event):
    command = command_for(event, CUSTOMER, AT)
    assert command is not None and command.type == "admin_access_removed"
    assert command.fields["relationship_id"] is None
    assert relationship_id(CUSTOMER + "/adminrelationships/r9") == "r9"


@pytest.mark.parametrize("event", ["subscription-updated", "subscription-renewed", "unknown"])
def test_everything_else_maps_to_nothing(event):
    assert command_for(event, CUSTOMER, AT) is None
