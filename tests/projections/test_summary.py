"""The dashboard summary: per partner and overall, time-dependent parts at the query's now."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tests.factories import ADMIN, BILLING, SALES
from tests.projections.conftest import NOW, TODAY, record_original, request
from tests.projections.expected import summary_of


def given_a_portfolio(app):
    a = request(app)
    record_original(app, a, "o1", licenses=10, term_end=TODAY + timedelta(days=5))
    record_original(app, a, "o2", licenses=20, term_end=TODAY + timedelta(days=60))
    app.accept_invitation(a, ADMIN, accepted_by="ga@contoso.example")
    app.provision_subscription(
        a,
        SALES,
        subscription_id="c2",
        replaces="o2",
        offer_id="O365_E3",
        offer_name="E3",
        licenses=18,
    )
    app.record_cancellation(a, ADMIN, subscription_id="o2", cancelled_by="customer")
    app.request_credit(a, BILLING, subscription_id="o2", requested_by="customer")
    app.resolve_credit(
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
    app.abandon(c, ADMIN, reason="went elsewhere")
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
