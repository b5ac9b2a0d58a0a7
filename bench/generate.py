"""Make realistic stores of any size fast: through the domain, saved in batches.

Every event goes through the aggregate's commands (so it is valid), but many aggregates are
saved per transaction instead of one command per save.
Usage: python -m bench.generate --store sqlite --events 100000
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.application import Tracker
from domain.context import Context
from domain.migration import Migration
from domain.partner import TenantClaim

PARTNERS = [("fabrikam", "europe"), ("northwind", "north_america"), ("adatum", "asia_pacific")]
OFFERS = [("O365_E1", "Office 365 E1"), ("O365_E3", "Office 365 E3"), ("M365_BP", "M365 BP")]


@dataclass
class Generated:
    migrations: int = 0
    events: int = 0


def ensure_partners(tracker: Tracker) -> None:
    for pid, region in PARTNERS:
        try:
            tracker.get_partner(pid)
        except Exception:
            tracker.register_partner(pid, pid.title(), region)


def one_migration(rng: random.Random, n: int, today: date) -> tuple[Migration, TenantClaim]:
    """A migration walked to a random point of the four seed steps."""
    pid, region = PARTNERS[n % len(PARTNERS)]
    sales = Context(f"sales@{pid}", "sales_agent")
    admin = Context(f"admin@{pid}", "account_admin")
    billing = Context(f"billing@{pid}", "billing_agent")
    tenant = f"customer{n}.onmicrosoft.com"
    m = Migration.request_relationship(
        sales,
        partner_id=pid,
        partner_region=region,
        tenant_id=tenant,
        customer_name=f"Customer {n} Ltd",
        customer_region=region,
        channel=rng.choice(["direct", "other_partner", "other_channel"]),
        multi_partner=False,
    )
    claim = TenantClaim.open(pid, tenant, m.id)
    subs = [f"orig-{i}" for i in range(rng.randint(1, 3))]
    for sub in subs:
        offer = rng.choice(OFFERS)
        m.record_original(
            sales,
            subscription_id=sub,
            offer_id=offer[0],
            offer_name=offer[1],
            licenses=rng.randint(5, 300),
            term_end=today + timedelta(days=rng.randint(-20, 200)),
            purchased_via=rng.choice(["m365_admin_portal", "other_partner", "other_channel"]),
            billing_cycle=rng.choice(["monthly", "annual"]),
        )
    depth = rng.random()
    if depth < 0.1:
        return m, claim
    m.accept_invitation(admin, accepted_by=f"ga@{tenant}")
    if rng.random() < 0.4:
        m.grant_admin_access(admin, kind="gdap", expires_at=datetime.now(UTC) + timedelta(days=365))
    m.add_note(sales, text="kick-off call held with the customer")
    if depth < 0.2:
        return m, claim
    for i, sub in enumerate(subs):
        original = m.state.originals[sub]
        short = rng.random() < 0.1
        m.provision_subscription(
            sales,
            subscription_id=f"csp-{n}-{i}",
            replaces=sub,
            offer_id=original.offer_id,
            offer_name=original.offer_name,
            licenses=original.licenses - (1 if short else 0),
        )
    if depth < 0.45:
        return m, claim
    for sub in subs:
        original = m.state.originals[sub]
        if rng.random() < 0.7:
            m.disable_auto_renew(admin, subscription_id=sub)
            m.record_expiry(admin, subscription_id=sub)
        else:
            m.record_cancellation(admin, subscription_id=sub, cancelled_by="customer")
            if original.purchased_via == "m365_admin_portal":
                m.request_credit(billing, subscription_id=sub, requested_by="customer")
                m.resolve_credit(
                    billing,
                    subscription_id=sub,
                    outcome="granted",
                    amount=Decimal(rng.randint(10, 500)),
                    currency="EUR",
                )
        if m.is_closed:
            break
    if not m.is_closed and rng.random() < 0.2:
        m.abandon(admin, reason="customer chose another partner")
    if m.is_closed:
        claim.release(m.id)
    return m, claim


def generate(tracker: Tracker, events: int, *, seed: int = 7, batch: int = 200) -> Generated:
    """Append about `events` events (stops at the first migration that reaches it)."""
    ensure_partners(tracker)
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    done = Generated()
    pending: list[Any] = []
    n = 0
    while done.events < events:
        m, claim = one_migration(rng, n, today)
        n += 1
        done.migrations += 1
        done.events += len(m.pending_events)
        pending += [m, claim]
        if len(pending) >= 2 * batch:
            tracker.save(*pending)
            pending.clear()
    if pending:
        tracker.save(*pending)
    return done


def long_migration(tracker: Tracker, events: int) -> Migration:
    """One migration with `events` events (mostly notes), for time-travel benchmarks."""
    ensure_partners(tracker)
    m, claim = one_migration(random.Random(1), 10**9, datetime.now(UTC).date())
    tracker.save(m, claim)
    while m.version < events:
        for _ in range(min(500, events - m.version)):
            m.add_note(Context("admin@fabrikam", "account_admin"), text="status update")
        tracker.save(m)
    return m


def main() -> None:
    from bench.common import store

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    import time

    with store(args.store) as env:
        tracker = Tracker(env=env)
        start = time.perf_counter()
        result = generate(tracker, args.events)
        seconds = time.perf_counter() - start
        print(
            f"{result.events} events in {result.migrations} migrations: "
            f"{result.events / seconds:,.0f} events/s"
        )


if __name__ == "__main__":
    main()
