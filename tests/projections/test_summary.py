"""The dashboard summary: per partner and overall, time-dependent parts at the query's now."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from domain.context import Context
from tests.factories import ADMIN, BILLING, SALES, record
from tests.projections.conftest import NOW, TODAY, record_original, request
from tests.projections.expected import summary_of


def given_a_portfolio(app):
    a = request(app)
    # o1 is another offer: o2's offer is fully provisioned (with 2 licenses short).
    record_original(app, a, "o1", licenses=10, term_end=TODAY + timedelta(days=5), offer="EMS_E3")
    record_original(app, a, "o2", licenses=20, term_end=TODAY + timedelta(days=60))
    record(app, "invitation_accepted", a, ADMIN, accepted_by="ga@contoso.example")
    record(
        app,
        "subscription_provisioned",
        a,
        SALES,
        subscription_id="c2",
        replaces="o2",
        offer_id="O365_E3",
        offer_name="E3",
        licenses=18,
    )
    record(
        app,
        "original_subscription_cancelled",
        a,
        ADMIN,
        subscription_id="o2",
        cancelled_by="customer",
    )
    record(app, "credit_requested", a, BILLING, subscription_id="o2", requested_by="customer")
    record(
        app,
        "credit_resolved",
        a,
        BILLING,
        subscription_id="o2",
        outcome="granted",
        amount=Decimal("40.50"),
        currency="eur",
    )
    b = request(app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove")
    record_original(app, b, "o1", licenses=7, term_end=TODAY + timedelta(days=80))
    c = request(app, "gone.onmicrosoft.com")
    record(app, "migration_abandoned", c, ADMIN, reason="went elsewhere")
    return [a, b, c]


class TestGivenAPortfolio:
    def test_partner_and_overall_counts_match_the_domain_states(self, app, read_side):
        ids = given_a_portfolio(app)
        read_side.catch_up()
        states = {mid: app.get(mid).state for mid in ids}
        summary = read_side.queries.summary(now=NOW)

        fabrikam = [s for s in states.values() if s.partner_id == "fabrikam"]
        northwind = [s for s in states.values() if s.partner_id == "northwind"]
        assert summary["partners"] == {
            "fabrikam": summary_of(fabrikam, NOW),
            "northwind": summary_of(northwind, NOW),
        }
        assert summary["overall"] == summary_of(list(states.values()), NOW)

    def test_reads_the_expected_figures(self, app, read_side):
        given_a_portfolio(app)
        read_side.catch_up()
        fabrikam = read_side.queries.summary(now=NOW, partner_id="fabrikam")
        assert list(fabrikam["partners"]) == ["fabrikam"]
        f = fabrikam["partners"]["fabrikam"]
        assert f["migrations"] == 2
        assert f["stages"]["provisioning"] == 1 and f["stages"]["abandoned"] == 1
        assert f["licenses"] == {"original": 30, "provisioned": 18}
        assert f["ending_unreplaced"] == {"7": 1, "30": 1, "90": 1}
        assert f["credits"] == {
            "requested": 1,
            "granted": 1,
            "denied": 0,
            "granted_amount": {"EUR": "40.5"},
        }
        assert f["risks"]["license_shortfall"] == 1

    def test_horizons_move_with_the_query_time(self, app, read_side):
        given_a_portfolio(app)
        read_side.catch_up()
        later = read_side.queries.summary(now=NOW + timedelta(days=70))
        # o1 of fabrikam ended (unreplaced, past term end): no longer "ending"; northwind's
        # original (day 80) is now within 30 days.
        assert later["overall"]["ending_unreplaced"] == {"7": 0, "30": 1, "90": 1}
        assert later["overall"]["risks"]["expiring_unreplaced"] == 2


# Query times around every threshold: the horizons (7/30/90 days ahead), ENDING_SOON (30),
# the grace period (30 days after an expiry) and deletion (120 days), from well before to after.
OFFSETS = [*range(-45, 130), 200, 400]


def given_dates_on_every_boundary(app):
    """Open migrations whose originals end on and around the thresholds, some expired, one
    replaced, one still auto-renewing; plus a closed migration that must count for nothing."""
    a = request(app)
    for sub, days in (("o7", 7), ("o8", 8), ("o30", 30), ("o31", 31), ("o90", 90), ("o91", 91)):
        record_original(app, a, sub, term_end=TODAY + timedelta(days=days))
        if days % 2:
            record(app, "original_auto_renew_disabled", a, ADMIN, subscription_id=sub)
    # Requested long ago: its originals expired on their (past) term ends.
    b = request(
        app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove", NOW - timedelta(days=200)
    )
    expired = (("e1", -31), ("e2", -29), ("e3", -125), ("e4", -100))
    for sub, days in (*expired, ("live", 45), ("swap", 10)):
        record_original(app, b, sub, term_end=TODAY + timedelta(days=days))
        record(app, "original_auto_renew_disabled", b, ADMIN, subscription_id=sub)
    for sub, days in expired:
        # Expired on its term end (the grace period counts from the actual expiry).
        on_term_end = Context(ADMIN.principal, ADMIN.role, occurred_at=NOW + timedelta(days=days))
        record(app, "original_subscription_expired", b, on_term_end, subscription_id=sub)
    record(app, "invitation_accepted", b, ADMIN, accepted_by="ga@woodgrove.example")
    record(
        app,
        "subscription_provisioned",
        b,
        SALES,
        subscription_id="c1",
        replaces="swap",
        offer_id="O365_E3",
        offer_name="E3",
        licenses=25,
    )
    c = request(app, "gone.onmicrosoft.com")
    record_original(app, c, "o1", term_end=TODAY + timedelta(days=3))
    record(app, "migration_abandoned", c, ADMIN, reason="went elsewhere")
    return [a, b, c]


def summaries_match_the_domain_at_every_offset(app, read_side, ids):
    states = [app.get(mid).state for mid in ids]
    for days in OFFSETS:
        now = NOW + timedelta(days=days)
        summary = read_side.queries.summary(now=now)
        assert summary["overall"] == summary_of(states, now), days
        for partner in ("fabrikam", "northwind"):
            mine = [s for s in states if s.partner_id == partner]
            by_partner = read_side.queries.summary(now=now, partner_id=partner)
            assert by_partner["partners"] == {partner: summary_of(mine, now)}, (partner, days)


class TestGivenDatesOnEveryBoundary:
    def test_time_dependent_counts_equal_the_domain_at_every_query_time(self, app, read_side):
        ids = given_dates_on_every_boundary(app)
        read_side.catch_up()
        summaries_match_the_domain_at_every_offset(app, read_side, ids)
        # Not vacuous: today, every horizon includes its boundary day and excludes the next.
        overall = read_side.queries.summary(now=NOW)["overall"]
        assert overall["ending_unreplaced"] == {"7": 1, "30": 3, "90": 6}
        assert overall["risks"]["expiring_unreplaced"] == 1
        assert overall["risks"]["auto_renew_on"] == 1
        assert overall["risks"]["grace_period"] == 1
        assert overall["risks"]["access_lost"] == 1
        assert overall["risks"]["data_loss"] == 1

    def test_counts_follow_changes_and_closed_migrations_drop_out(self, app, read_side):
        a, b, c = given_dates_on_every_boundary(app)
        read_side.catch_up()
        # When dates change (a replacement, an expiry) and a migration is abandoned...
        record(app, "invitation_accepted", a, ADMIN, accepted_by="ga@contoso.example")
        record(
            app,
            "subscription_provisioned",
            a,
            SALES,
            subscription_id="c7",
            replaces="o7",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=25,
        )
        record(
            app,
            "original_subscription_cancelled",
            a,
            ADMIN,
            subscription_id="o31",
            cancelled_by="customer",
        )
        record(app, "migration_abandoned", b, ADMIN, reason="customer left")
        read_side.catch_up()
        # ...the summary still equals the domain at every time: abandoned b no longer counts as
        # ending, but keeps the flags of its expired, unreplaced originals (rule 10),
        summaries_match_the_domain_at_every_offset(app, read_side, [a, b, c])
        northwind = read_side.queries.summary(now=NOW, partner_id="northwind")["partners"]
        assert northwind["northwind"]["ending_unreplaced"] == {"7": 0, "30": 0, "90": 0}
        risks = northwind["northwind"]["risks"]
        assert {"grace_period", "access_lost", "data_loss"} <= set(risks)
        assert "expiring_unreplaced" not in risks
        # ...and the buckets are exactly those of a rebuild (emptied buckets are deleted).
        incremental = read_side.view.dump(app.name)
        assert all(row[-1] > 0 for row in incremental["summary_dates"])
        read_side.rebuild("summary")
        assert read_side.view.dump(app.name) == incremental
        read_side.rebuild()
        assert read_side.view.dump(app.name) == incremental
