"""Make realistic stores of any size fast: through the domain, saved in batches.

Every event goes through the aggregate's commands (so it is valid), but many aggregates are
saved per transaction instead of one command per save.
Usage: python -m bench.generate --store sqlite --events 100000
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

from domain.application import Tracker
from domain.commands import Clock, Command, system_clock
from domain.context import Context
from domain.migration import Migration
from domain.offers import Catalogue, shipped
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


def one_migration(
    rng: random.Random,
    n: int,
    today: date,
    *,
    clock: Clock = system_clock,
    offers: Catalogue | None = None,
) -> tuple[Migration, TenantClaim]:
    """A migration walked to a random point of the four seed steps. Each command is decided
    at `clock()` (its recorded time, and its business time unless the context says otherwise)."""
    catalogue = offers if offers is not None else shipped()
    pid, region = PARTNERS[n % len(PARTNERS)]
    sales = Context(f"sales@{pid}", "sales_agent")
    admin = Context(f"admin@{pid}", "account_admin")
    billing = Context(f"billing@{pid}", "billing_agent")
    tenant = f"customer{n}.onmicrosoft.com"
    m = Migration.start(
        uuid4(),
        Command.of(
            "relationship_requested",
            partner_id=pid,
            partner_region=region,
            tenant_id=tenant,
            customer_name=f"Customer {n} Ltd",
            customer_region=region,
            channel=rng.choice(["direct", "other_partner", "other_channel"]),
            multi_partner=False,
        ),
        sales,
        clock(),
        catalogue,
    )

    def do(ctx: Context, event: str, **fields: Any) -> None:
        m.execute(Command.of(event, **fields), ctx, clock(), catalogue)

    claim = TenantClaim.open(pid, tenant, m.id)
    subs = [f"orig-{i}" for i in range(rng.randint(1, 3))]
    for sub in subs:
        offer = rng.choice(OFFERS)
        do(
            sales,
            "original_subscription_recorded",
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
    do(admin, "invitation_accepted", accepted_by=f"ga@{tenant}")
    if rng.random() < 0.4:
        # New DAP is refused since 2023-10-01: GDAP, which needs an expiry (at most 730 days).
        do(admin, "admin_access_granted", kind="gdap", expires_at=clock() + timedelta(days=365))
    do(sales, "note_added", text="kick-off call held with the customer")
    if depth < 0.2:
        return m, claim
    for i, sub in enumerate(subs):
        original = m.state.originals[sub]
        short = rng.random() < 0.1
        do(
            sales,
            "subscription_provisioned",
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
        # An original expires only once its term has ended (else `before_term_end`): those
        # whose term runs on are cancelled instead. The expiry is recorded now, which is at or
        # after the term end, so it still follows the provisioning in business time.
        if rng.random() < 0.7 and original.term_end <= today:
            do(admin, "original_auto_renew_disabled", subscription_id=sub)
            do(admin, "original_subscription_expired", subscription_id=sub)
        else:
            do(
                admin,
                "original_subscription_cancelled",
                subscription_id=sub,
                cancelled_by="customer",
            )
            if original.purchased_via == "m365_admin_portal":
                do(billing, "credit_requested", subscription_id=sub, requested_by="customer")
                do(
                    billing,
                    "credit_resolved",
                    subscription_id=sub,
                    outcome="granted",
                    amount=Decimal(rng.randint(10, 500)),
                    currency="EUR",
                )
        if m.is_closed:
            break
    if not m.is_closed and rng.random() < 0.2:
        do(admin, "migration_abandoned", reason="customer chose another partner")
    if m.is_closed:
        claim.release(m.id)
    return m, claim


def generate(tracker: Tracker, events: int, *, seed: int = 7, batch: int = 200) -> Generated:
    """Append about `events` events (stops at the first migration that reaches it)."""
    ensure_partners(tracker)
    rng = random.Random(seed)
    today = tracker.clock().date()
    done = Generated()
    pending: list[Any] = []
    n = 0
    while done.events < events:
        m, claim = one_migration(rng, n, today, clock=tracker.clock, offers=tracker.offers)
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
    m, claim = one_migration(
        random.Random(1),
        10**9,
        tracker.clock().date(),
        clock=tracker.clock,
        offers=tracker.offers,
    )
    tracker.save(m, claim)
    note = Command.of("note_added", text="status update")
    while m.version < events:
        for _ in range(min(500, events - m.version)):
            admin = Context("admin@fabrikam", "account_admin")  # one request per note
            m.execute(note, admin, tracker.clock(), tracker.offers)
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
