"""The `migrations` view: one row per migration, shaped by domain.view.describe at read time."""

from __future__ import annotations

from datetime import timedelta

from domain.view import describe
from tests.factories import ADMIN, SALES, record
from tests.projections.conftest import NOW, TODAY, record_original, request


def described(app, mid, now=NOW):
    migration = app.get(mid)
    return describe(mid, migration.version, migration.state, now)


class TestGivenMigrationsOfTwoPartners:
    def test_each_migration_reads_as_the_domain_describes_it(self, app, read_side):
        a = request(app)
        record_original(app, a)
        record(app, "invitation_accepted", a, ADMIN, accepted_by="ga@contoso.example")
        b = request(app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove")
        read_side.catch_up()

        assert read_side.queries.get_migration(str(a), now=NOW) == described(app, a)
        assert read_side.queries.get_migration(str(b), now=NOW) == described(app, b)

    def test_unknown_migration_is_none(self, app, read_side):
        read_side.catch_up()
        assert read_side.queries.get_migration("nope", now=NOW) is None

    def test_filters_by_partner_stage_and_tenant(self, app, read_side):
        a = request(app)
        record(app, "invitation_accepted", a, ADMIN, accepted_by="ga@contoso.example")
        b = request(app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove")
        read_side.catch_up()
        q = read_side.queries

        assert [m["id"] for m in q.list_migrations(now=NOW, partner_id="northwind")[0]] == [str(b)]
        assert [m["id"] for m in q.list_migrations(now=NOW, stage="accepted")[0]] == [str(a)]
        found, _ = q.list_migrations(now=NOW, tenant_id="WOODGROVE.onmicrosoft.com")
        assert [m["id"] for m in found] == [str(b)]

    def test_text_search_matches_customer_name_case_insensitively(self, app, read_side):
        request(app)
        b = request(app, "woodgrove.onmicrosoft.com", "northwind", "Woodgrove Bank")
        read_side.catch_up()
        found, _ = read_side.queries.list_migrations(now=NOW, text="woodGROVE b")
        assert [m["id"] for m in found] == [str(b)]

    def test_pages_follow_the_cursor_without_overlap(self, app, read_side):
        ids = sorted(str(request(app, f"t{i}.onmicrosoft.com")) for i in range(5))
        read_side.catch_up()
        q = read_side.queries
        first, cursor = q.list_migrations(now=NOW, limit=2)
        second, cursor2 = q.list_migrations(now=NOW, limit=2, cursor=cursor)
        third, cursor3 = q.list_migrations(now=NOW, limit=2, cursor=cursor2)
        assert [m["id"] for m in first + second + third] == ids
        assert cursor3 is None


class TestGivenAnOriginalEndingSoon:
    def test_expiring_flag_is_evaluated_at_the_query_time(self, app, read_side):
        mid = request(app)
        record_original(app, mid, term_end=TODAY + timedelta(days=45))
        read_side.catch_up()
        q = read_side.queries

        today_flags = q.get_migration(str(mid), now=NOW)["risks"]
        later = NOW + timedelta(days=20)
        later_flags = q.get_migration(str(mid), now=later)["risks"]

        assert "expiring_unreplaced" not in today_flags
        assert "expiring_unreplaced" in later_flags
        assert q.get_migration(str(mid), now=later) == described(app, mid, later)

    def test_filters_by_timed_risk_and_term_end(self, app, read_side):
        soon = request(app)
        record_original(app, soon, term_end=TODAY + timedelta(days=10))
        far = request(app, "far.onmicrosoft.com")
        record_original(app, far, term_end=TODAY + timedelta(days=200))
        read_side.catch_up()
        q = read_side.queries

        expiring, _ = q.list_migrations(now=NOW, risk="expiring_unreplaced")
        assert [m["id"] for m in expiring] == [str(soon)]
        before, _ = q.list_migrations(now=NOW, term_end_before=TODAY + timedelta(days=30))
        assert [m["id"] for m in before] == [str(soon)]
        much_later, _ = q.list_migrations(now=NOW + timedelta(days=190), risk="expiring_unreplaced")
        assert {m["id"] for m in much_later} == {str(soon), str(far)}


class TestGivenAStandingRisk:
    def test_filters_by_stored_risk_flag(self, app, read_side):
        mid = request(app)
        record_original(app, mid)
        record(app, "invitation_accepted", mid, ADMIN, accepted_by="ga@contoso.example")
        record(
            app,
            "subscription_provisioned",
            mid,
            SALES,
            subscription_id="csp-1",
            replaces="orig-1",
            offer_id="M365_BP",
            offer_name="M365 BP",
            licenses=20,
        )
        other = request(app, "other.onmicrosoft.com")
        read_side.catch_up()
        q = read_side.queries

        short, _ = q.list_migrations(now=NOW, risk="license_shortfall")
        pending, _ = q.list_migrations(now=NOW, risk="reassignment_pending")
        assert [m["id"] for m in short] == [str(mid)]
        assert [m["id"] for m in pending] == [str(mid)]
        assert str(other) not in {m["id"] for m in short}
        assert q.get_migration(str(mid), now=NOW) == described(app, mid)


class TestGivenPartnerAndClaimEvents:
    def test_they_are_skipped_but_tracked_so_lag_reaches_zero(self, app, read_side):
        request(app)
        read_side.catch_up()
        lag = read_side.lag()
        head = app.recorder.max_notification_id()
        assert set(lag) == {"migrations", "audit", "summary", "ledger"}
        assert all(v == {"position": head, "head": head, "lag": 0} for v in lag.values())
