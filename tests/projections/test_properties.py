"""Property: for random command sequences, the views equal the domain's own derived state."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.state import replay
from domain.view import describe
from tests.factories import ADMIN, BILLING, SALES, record, start
from tests.projections.conftest import NOW, TODAY
from tests.projections.expected import summary_of

# Weighted so that sequences reach provisioning, endings and credits often.
OPS = [
    *["original"] * 4,
    *["provision"] * 4,
    *["accept", "cancel", "expire", "disable_auto_renew", "request_credit"] * 2,
    *["resolve_credit", "reassign", "change_licenses"] * 2,
    "original",
    "accept",
    "grant_admin",
    "remove_admin",
    "disable_auto_renew",
    "retire_offer",
    "provision",
    "reassign",
    "change_licenses",
    "expire",
    "cancel",
    "request_credit",
    "resolve_credit",
    "deny_credit",
    "abandon",
    "note",
]
# Days from NOW at which the summary is also checked: around ENDING_SOON and each horizon
# (7/30/90) and the grace period (30 days after an expired term end, -60..200 above).
QUERY_OFFSETS = (-95, -61, -31, -30, -1, 1, 6, 7, 8, 29, 31, 61, 89, 91, 170, 231)
op = st.tuples(
    st.integers(0, 1),  # migration slot
    st.sampled_from(OPS),
    st.integers(0, 1),  # original index
    st.integers(-60, 200),  # days (term ends, expiries)
    st.integers(1, 40),  # licenses
)


def run(app, partner: str, ops) -> list:
    slots: dict[int, uuid.UUID] = {}
    for slot, name, k, days, licenses in ops:
        try:
            if slot not in slots:
                slots[slot] = start(
                    app,
                    SALES,
                    partner_id=partner,
                    tenant_id=f"{partner}-{slot}.example",
                    customer_name=f"Customer {slot}",
                    customer_region="europe",
                    channel="direct",
                ).migration.id
            mid, sub = slots[slot], f"o{k}"
            if name == "original":
                record(
                    app,
                    "original_subscription_recorded",
                    mid,
                    SALES,
                    subscription_id=sub,
                    offer_id=f"OFFER{k}",
                    offer_name="Offer",
                    licenses=licenses,
                    term_end=TODAY + timedelta(days=days),
                    purchased_via="m365_admin_portal" if k != 1 else "other_partner",
                    billing_cycle="annual",
                    auto_renew=days % 2 == 0,
                )
            elif name == "accept":
                record(app, "invitation_accepted", mid, ADMIN, accepted_by="ga@example")
            elif name == "grant_admin":
                record(
                    app,
                    "admin_access_granted",
                    mid,
                    ADMIN,
                    kind="gdap",
                    expires_at=NOW + timedelta(days=abs(days) + 1),
                )
            elif name == "remove_admin":
                record(app, "admin_access_removed", mid, ADMIN)
            elif name == "disable_auto_renew":
                record(app, "original_auto_renew_disabled", mid, ADMIN, subscription_id=sub)
            elif name == "retire_offer":
                record(app, "offer_retired", mid, ADMIN, subscription_id=sub)
            elif name == "provision":
                record(
                    app,
                    "subscription_provisioned",
                    mid,
                    SALES,
                    subscription_id=f"c{k}",
                    replaces=sub,
                    offer_id=f"OFFER{k}" if days % 3 else "OTHER",
                    offer_name="Offer",
                    licenses=licenses,
                )
            elif name == "reassign":
                record(app, "licenses_reassigned", mid, ADMIN, subscription_id=f"c{k}")
            elif name == "change_licenses":
                record(
                    app, "licenses_changed", mid, ADMIN, subscription_id=f"c{k}", licenses=licenses
                )
            elif name == "expire":
                record(app, "original_subscription_expired", mid, ADMIN, subscription_id=sub)
            elif name == "cancel":
                record(
                    app,
                    "original_subscription_cancelled",
                    mid,
                    ADMIN,
                    subscription_id=sub,
                    cancelled_by="customer",
                )
            elif name == "request_credit":
                record(
                    app,
                    "credit_requested",
                    mid,
                    BILLING,
                    subscription_id=sub,
                    requested_by="customer",
                )
            elif name == "resolve_credit":
                record(
                    app,
                    "credit_resolved",
                    mid,
                    BILLING,
                    subscription_id=sub,
                    outcome="granted",
                    amount=Decimal(licenses) / 4,
                    currency="EUR" if k else "USD",
                )
            elif name == "deny_credit":
                record(app, "credit_resolved", mid, BILLING, subscription_id=sub, outcome="denied")
            elif name == "abandon":
                record(app, "migration_abandoned", mid, ADMIN, reason="test")
            elif name == "note":
                record(app, "note_added", mid, ADMIN, text="note")
        except DomainError:
            pass
    return list(slots.values())


class TestForRandomCommandSequences:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        setup=st.lists(
            st.tuples(
                st.integers(0, 1),
                st.sampled_from(["original", "original", "accept"]),
                st.integers(0, 1),
                st.integers(-60, 200),
                st.integers(1, 40),
            ),
            min_size=3,
            max_size=6,
        ),
        ops=st.lists(op, min_size=1, max_size=40),
        days_later=st.sampled_from([0, 25, 95]),
    )
    def test_views_equal_replayed_states_and_counts(self, app, read_side, setup, ops, days_later):
        partner = f"p{uuid.uuid4().hex[:10]}"
        app.register_partner(partner, "Partner", "europe")
        ids = run(app, partner, setup + ops)
        read_side.catch_up()
        now = NOW + timedelta(days=days_later)

        states = {}
        for mid in ids:
            events = app.history(mid)
            states[mid] = replay(events)
            expected = describe(mid, events[-1].originator_version, states[mid], now)
            assert read_side.queries.get_migration(str(mid), now=now) == expected
        listed, _ = read_side.queries.list_migrations(now=now, partner_id=partner, limit=10)
        assert {m["id"] for m in listed} == {str(i) for i in ids}

        # The time-dependent counts at query times across every threshold and horizon.
        for days in (days_later, *QUERY_OFFSETS):
            at = NOW + timedelta(days=days)
            summary = read_side.queries.summary(now=at, partner_id=partner)
            assert summary["partners"].get(partner, None) == (
                summary_of(list(states.values()), at) if ids else None
            ), days


class TestForAGeneratedPortfolio:
    """The benchmark generator walks migrations through every step, credits and completion
    included: a broader, deterministic complement to the random sequences above."""

    def test_every_migration_and_the_summary_match_the_domain(self, app, read_side):
        from bench.generate import generate

        generate(app, 1500, seed=11)
        read_side.catch_up()
        for days_later in (0, 40):
            now = NOW + timedelta(days=days_later)
            states, cursor = {}, None
            while True:
                page, cursor = read_side.queries.list_migrations(now=now, limit=200, cursor=cursor)
                for item in page:
                    migration = app.get(uuid.UUID(item["id"]))
                    states[item["id"]] = migration.state
                    assert item == describe(item["id"], migration.version, migration.state, now)
                if cursor is None:
                    break
            summary = read_side.queries.summary(now=now)
            assert summary["overall"] == summary_of(list(states.values()), now)
            assert summary["overall"]["credits"]["granted"] > 0
            assert summary["overall"]["stages"]["completed"] > 0
