"""Fixtures of the read-side tests: a tracker with partners, and its read side."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from domain.application import Tracker
from domain.context import Context
from projections import ReadSide
from tests.factories import SALES, record, start

NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    tracker.register_partner("northwind", "Northwind CSP", "north_america")
    return tracker


@pytest.fixture
def read_side(app: Tracker, store_env: dict[str, str]) -> Iterator[ReadSide]:
    side = ReadSide(app, store_env, batch_size=50)
    try:
        yield side
    finally:
        side.close()


def request(
    app: Tracker,
    tenant: str = "contoso.onmicrosoft.com",
    partner: str = "fabrikam",
    name: str = "Contoso Ltd",
    at: datetime | None = None,
):
    region = "europe" if partner == "fabrikam" else "north_america"
    return start(
        app,
        SALES if at is None else Context(SALES.principal, SALES.role, occurred_at=at),
        partner_id=partner,
        tenant_id=tenant,
        customer_name=name,
        customer_region=region,
        channel="direct",
    ).migration.id


def record_original(
    app: Tracker,
    mid,
    sub: str = "orig-1",
    *,
    licenses: int = 25,
    term_end: date | None = None,
    via: str = "m365_admin_portal",
    offer: str = "O365_E3",
):
    return record(
        app,
        "original_subscription_recorded",
        mid,
        SALES,
        subscription_id=sub,
        offer_id=offer,
        offer_name=offer,
        licenses=licenses,
        term_end=term_end or TODAY + timedelta(days=120),
        purchased_via=via,
        billing_cycle="annual",
    )
