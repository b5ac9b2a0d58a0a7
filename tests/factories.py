"""Builders for tests that go through the Tracker (both stores) and the aggregate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from domain.application import Recorded, Tracker
from domain.commands import Command
from domain.context import Context
from domain.migration import Migration
from domain.offers import shipped

ADMIN = Context("alice@fabrikam.example", "account_admin")
SALES = Context("sam@fabrikam.example", "sales_agent")
BILLING = Context("bill@fabrikam.example", "billing_agent")
TODAY = datetime.now(UTC).date()


def record(
    app: Tracker,
    type: str,
    migration_id: UUID,
    ctx: Context,
    *,
    expected_version: int | None = None,
    **fields: Any,
) -> Recorded:
    """One command through the tracker's single command path."""
    return app.execute(migration_id, ctx, Command(type, fields), expected_version)


def start(app: Tracker, ctx: Context, **fields: Any) -> Recorded:
    return app.start(ctx, Command("relationship_requested", fields))


def decided(m: Migration, ctx: Context, type: str, **fields: Any) -> Migration:
    """One command on an aggregate (no store), at the wall clock's now."""
    m.execute(Command(type, fields), ctx, datetime.now(UTC), shipped())
    return m


def requested(region: str = "europe") -> Migration:
    return Migration.start(
        uuid4(),
        Command.of(
            "relationship_requested",
            partner_id="fabrikam",
            partner_region="europe",
            tenant_id="contoso.onmicrosoft.com",
            customer_name="Contoso Ltd",
            customer_region=region,
            channel="direct",
        ),
        SALES,
        datetime.now(UTC),
        shipped(),
    )
