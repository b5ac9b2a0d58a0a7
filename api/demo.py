"""A realistic sample: three partners, a dozen customers each, in every stage, some risky.

Loaded through the same command path the HTTP routes use (`Tracker.start` / `execute`), so
every event is checked by the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from domain.access import issue_key
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context

PARTNERS = [
    ("fabrikam", "Fabrikam Cloud Services", "europe"),
    ("northwind", "Northwind IT", "north_america"),
    ("adatum", "Adatum Solutions", "asia_pacific"),
]
CUSTOMERS = [
    "Contoso", "Litware", "Tailspin Toys", "Wingtip Toys", "Proseware", "Lucerne Publishing",
    "Margie's Travel", "Coho Winery", "Alpine Ski House", "Blue Yonder Airlines", "Woodgrove Bank",
    "Trey Research", "Humongous Insurance", "Graphic Design Institute", "Wide World Importers",
    "Southridge Video", "Fourth Coffee", "School of Fine Art", "Consolidated Messenger",
    "Relecloud", "VanArsdel", "Bellows College", "City Power & Light", "Datum Corporation",
    "Lamna Healthcare", "Munson's Pickles", "Nod Publishers", "Olympia Sports", "Phone Company",
    "Stellar Outdoor", "Tasmanian Traders", "Wayfarer Gear", "Best For You Organics",
    "Contoso Pharmaceuticals", "Fabrikam Residences", "First Up Consultants",
    "Northwind Traders", "Adventure Works", "Alpine Ski Resort", "Boulder Innovations",
    "Liberty Bakery", "Tailwind Traders",
]  # fmt: skip

Step = Callable[..., None]


def _scenarios(today: date) -> list[Callable[[Step], None]]:
    def original(sub="orig-1", licenses=25, days=60, offer="O365_E3", via="m365_admin_portal"):
        return {
            "type": "original_subscription_recorded",
            "subscription_id": sub,
            "offer_id": offer,
            "offer_name": offer.replace("_", " "),
            "licenses": licenses,
            "term_end": today + timedelta(days=days),
            "purchased_via": via,
            "billing_cycle": "annual",
        }

    accepted = {"type": "invitation_accepted", "accepted_by": "admin@customer.example"}

    def provisioned(sub="csp-1", replaces="orig-1", licenses=25, offer="O365_E3", name=None):
        return {
            "type": "subscription_provisioned",
            "subscription_id": sub,
            "replaces": replaces,
            "offer_id": offer,
            "offer_name": name or offer.replace("_", " "),
            "licenses": licenses,
        }

    def invited(step: Step) -> None:
        pass

    def invited_renewing_soon(step: Step) -> None:
        step(40, original(days=20))

    def accepted_only(step: Step) -> None:
        step(40, original(days=120))
        step(30, accepted)

    def provisioning(step: Step) -> None:
        step(50, original(days=90))
        step(50, original("orig-2", licenses=10, days=100, offer="EMS_E3"))
        step(40, accepted)
        step(35, {"type": "admin_access_granted", "kind": "gdap",
                  "expires_at": datetime.now(UTC) + timedelta(days=365)})  # fmt: skip
        step(30, provisioned())

    def provisioned_waiting(step: Step) -> None:
        step(50, original(days=45))
        step(45, accepted)
        step(40, provisioned())
        step(39, {"type": "original_auto_renew_disabled", "subscription_id": "orig-1"})

    def completed_by_cancellation(step: Step) -> None:
        step(80, original(days=10))
        step(75, accepted)
        step(70, provisioned())
        step(2, {"type": "original_subscription_cancelled", "subscription_id": "orig-1",
                 "cancelled_by": "customer"})  # fmt: skip
        step(1, {"type": "credit_requested", "subscription_id": "orig-1",
                 "requested_by": "customer"})  # fmt: skip
        step(0, {"type": "credit_resolved", "subscription_id": "orig-1", "outcome": "granted",
                 "amount": "120.00", "currency": "EUR"})  # fmt: skip

    def completed_by_expiry(step: Step) -> None:
        step(90, original(days=-5, via="other_channel"))
        step(85, {"type": "original_auto_renew_disabled", "subscription_id": "orig-1"})
        step(80, accepted)
        step(70, provisioned())
        step(4, {"type": "original_subscription_expired", "subscription_id": "orig-1"})

    def abandoned(step: Step) -> None:
        step(30, original(days=200))
        step(10, {"type": "migration_abandoned", "reason": "customer chose another partner"})

    def cancelled_before_replacement(step: Step) -> None:
        step(30, original(days=150))
        step(25, accepted)
        step(5, {"type": "original_subscription_cancelled", "subscription_id": "orig-1",
                 "cancelled_by": "customer"})  # fmt: skip

    def license_shortfall(step: Step) -> None:
        step(30, original(licenses=50, days=75))
        step(25, accepted)
        step(20, provisioned(licenses=40))
        step(19, {"type": "note_added", "text": "customer is checking 10 unused seats"})

    def reassignment_pending(step: Step) -> None:
        step(30, original(days=60))
        step(25, {"type": "offer_retired", "subscription_id": "orig-1"})
        step(20, accepted)
        # The new-commerce successor of the retired legacy offer: users must be moved onto it.
        step(15, provisioned(offer="CFQ7TTC0LF8R:0001", name="Office 365 E3 (new commerce)"))

    def in_grace_period(step: Step) -> None:
        step(60, original(days=-10))
        step(55, {"type": "original_auto_renew_disabled", "subscription_id": "orig-1"})
        step(50, accepted)
        step(9, {"type": "original_subscription_expired", "subscription_id": "orig-1"})

    def consolidated(step: Step) -> None:
        # Two E3 originals (10 + 15 seats) replaced by one CSP subscription of 25.
        step(40, original("orig-1", licenses=10, days=-3))
        step(40, original("orig-2", licenses=15, days=-3, offer="o365_e3"))
        step(35, accepted)
        step(30, provisioned(replaces=["orig-1", "orig-2"], licenses=25))
        for sub in ("orig-1", "orig-2"):
            step(20, {"type": "original_auto_renew_disabled", "subscription_id": sub})
            step(2, {"type": "original_subscription_expired", "subscription_id": sub})

    def multi_partner(step: Step) -> None:
        # Exchange stays with the customer's other partner; only E3 moves.
        step(40, original(days=50))
        step(40, original("orig-2", licenses=40, days=50, offer="EXO_P1"))
        step(38, {"type": "original_excluded", "subscription_id": "orig-2",
                  "reason": "kept_with_other_partner"})  # fmt: skip
        step(30, accepted)
        step(25, provisioned())

    return [
        invited, invited_renewing_soon, accepted_only, provisioning, provisioned_waiting,
        completed_by_cancellation, completed_by_expiry, abandoned, cancelled_before_replacement,
        license_shortfall, reassignment_pending, in_grace_period, consolidated, multi_partner,
    ]  # fmt: skip


def load_demo(tracker: Tracker) -> dict[str, str]:
    """Register the demo partners and migrations; return {key name: token}."""
    now = datetime.now(UTC)
    scenarios = _scenarios(now.date())
    tokens: dict[str, str] = {}
    customers = iter(CUSTOMERS)
    for partner_id, name, region in PARTNERS:
        tracker.register_partner(partner_id, name, region)
        for role in ("account_admin", "sales_agent", "billing_agent"):
            key_name = f"demo-{partner_id}-{role.split('_')[0]}"
            tokens[key_name] = issue_key(tracker, key_name, role, partner_id).token
        principal = f"demo-{partner_id}-account"
        for scenario in scenarios:
            customer = next(customers)
            domain = "".join(c for c in customer.lower() if c.isalnum())[:20]
            started = now - timedelta(days=100)
            ctx = Context(principal, "account_admin", occurred_at=started)
            multi = scenario.__name__ == "multi_partner"
            recorded = tracker.start(
                ctx,
                Command.of(
                    "relationship_requested",
                    partner_id=partner_id,
                    tenant_id=f"{domain}.onmicrosoft.com",
                    customer_name=f"{customer} Ltd",
                    customer_region=region,
                    channel="other_partner" if multi else "direct",
                    multi_partner=multi,
                ),
            )
            migration_id = recorded.migration.id

            def step(
                days_ago: float, body: dict[str, Any], _id=migration_id, principal=principal
            ) -> None:
                fields = {k: v for k, v in body.items() if k != "type"}
                if "amount" in fields:
                    from decimal import Decimal

                    fields["amount"] = Decimal(fields["amount"])
                when = now - timedelta(days=days_ago, minutes=1)
                tracker.execute(
                    _id,
                    Context(principal, "account_admin", occurred_at=when),
                    Command(body["type"], fields),
                )

            scenario(step)
    tokens["demo-auditor"] = issue_key(tracker, "demo-auditor", "auditor", None).token
    return tokens


def overview(tracker: Tracker) -> list[str]:
    """One line per migration in the store: partner, customer, stage and risk flags now."""
    from domain.rules import risks

    now = datetime.now(UTC)
    lines = []
    for n in tracker.recorder.select_notifications(
        None, 10_000, topics=["csp_tracker.migration:relationship_requested"]
    ):
        m = tracker.get(cast(UUID, n.originator_id))  # this tracker's ids are UUIDs
        flags = ", ".join(risks(m.state, now)) or "-"
        lines.append(
            f"  {m.state.partner_id:10} {m.state.customer_name:30} {m.state.stage:13} {flags}"
        )
    return lines


def store_is_empty(tracker: Tracker) -> bool:
    return not tracker.recorder.max_notification_id()
