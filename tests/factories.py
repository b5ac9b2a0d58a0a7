"""Builders for given/when/then specifications of the Migration aggregate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from domain.context import Context
from domain.migration import Migration, event_type

ADMIN = Context("alice@fabrikam.example", "account_admin")
SALES = Context("sam@fabrikam.example", "sales_agent")
BILLING = Context("bill@fabrikam.example", "billing_agent")
TODAY = datetime.now(UTC).date()


def at(days_from_today: float) -> Context:
    """An account admin recording something that happened `days` from now (negative: past)."""
    when = datetime.now(UTC) + timedelta(days=days_from_today)
    return Context(ADMIN.principal, ADMIN.role, occurred_at=when)


def requested(region: str = "europe") -> Migration:
    return Migration.request_relationship(
        SALES,
        partner_id="fabrikam",
        partner_region="europe",
        tenant_id="contoso.onmicrosoft.com",
        customer_name="Contoso Ltd",
        customer_region=region,
        channel="direct",
        multi_partner=False,
    )


def with_original(
    m: Migration,
    sub: str = "orig-1",
    *,
    licenses: int = 25,
    offer: str = "O365_E3",
    term_end: date | None = None,
    via: str = "m365_admin_portal",
    auto_renew: bool = True,
) -> Migration:
    m.record_original(
        SALES,
        subscription_id=sub,
        offer_id=offer,
        offer_name=offer.replace("_", " "),
        licenses=licenses,
        term_end=term_end or TODAY + timedelta(days=60),
        purchased_via=via,
        billing_cycle="annual",
        auto_renew=auto_renew,
    )
    return m


def accepted(m: Migration) -> Migration:
    m.accept_invitation(ADMIN, accepted_by="ga@contoso.example")
    return m


def provisioned(
    m: Migration,
    sub: str = "csp-1",
    replaces: str = "orig-1",
    *,
    licenses: int = 25,
    offer: str = "O365_E3",
) -> Migration:
    m.provision_subscription(
        SALES,
        subscription_id=sub,
        replaces=replaces,
        offer_id=offer,
        offer_name=offer,
        licenses=licenses,
    )
    return m


def given(m: Migration) -> Migration:
    """Clear pending events so the `then` step sees only what `when` recorded."""
    m.collect_events()
    return m


def recorded(m: Migration) -> list[str]:
    return [event_type(e) for e in m.collect_events()]
