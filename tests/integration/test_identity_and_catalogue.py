"""Tenant identity claims, the offer catalogue file, and business-time views, on both stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.application import AggregateNotFoundError

from domain.application import Tracker
from domain.context import Context
from domain.errors import Conflict
from domain.partner import TenantClaim
from tests.factories import ADMIN, SALES, record, start

GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    return tracker


def request(app: Tracker, tenant: str, guid: str | None = None, at: datetime | None = None):
    return start(
        app,
        Context(SALES.principal, SALES.role, occurred_at=at),
        partner_id="fabrikam",
        tenant_id=tenant,
        tenant_guid=guid,
        customer_name="Contoso Ltd",
        customer_region="europe",
        channel="direct",
    ).migration.id


class TestTenantGuidClaims:
    def test_closing_frees_the_guid_for_a_new_migration(self, app):
        first = request(app, "contoso.com", GUID)
        with pytest.raises(Conflict, match=r"^migration_open:"):
            request(app, "contoso-renamed.com", GUID)
        record(app, "migration_abandoned", first, ADMIN, reason="paused")
        assert request(app, "contoso-renamed.com", GUID) != first

    def test_a_guid_learnt_at_acceptance_that_another_migration_holds_is_refused(self, app):
        request(app, "contoso.com", GUID)
        other = request(app, "other-domain.com")
        with pytest.raises(Conflict, match=r"^migration_open:"):
            record(app, "invitation_accepted", other, ADMIN, accepted_by="ga", tenant_guid=GUID)
        assert app.get(other).state.accepted_at is None

    def test_a_race_on_the_guid_is_a_conflict_not_a_crash(self, app, monkeypatch):
        held = request(app, "contoso.com", GUID)
        record(app, "migration_abandoned", held, ADMIN, reason="paused")
        request(app, "contoso-two.com", GUID)  # holds the GUID claim now
        guid_claim = TenantClaim.key("fabrikam", f"guid:{GUID}")
        real_get = app.repository.get

        def stale_get(aggregate_id, *args, **kwargs):
            # The request reads the GUID claim before the other one saved it.
            if aggregate_id == guid_claim and not stale_get.seen:
                stale_get.seen = True
                raise AggregateNotFoundError(aggregate_id)
            return real_get(aggregate_id, *args, **kwargs)

        stale_get.seen = False
        monkeypatch.setattr(app.repository, "get", stale_get)
        with pytest.raises(Conflict, match=r"^migration_open:"):
            request(app, "contoso-three.com", GUID)


class TestTheOfferCatalogueFile:
    def test_a_deployments_file_extends_the_shipped_catalogue(self, store_env, tmp_path):
        extra = tmp_path / "offers.json"
        extra.write_text(
            json.dumps(
                {"families": [{"family": "office_365_e3", "offers": [["CONTOSO_E3_BUNDLE"]]}]}
            )
        )
        app = Tracker(env={**store_env, "OFFER_CATALOGUE": str(extra)})
        try:
            app.register_partner("fabrikam", "Fabrikam CSP", "europe")
            mid = request(app, "contoso.com")
            record(
                app,
                "original_subscription_recorded",
                mid,
                SALES,
                subscription_id="orig-1",
                offer_id="contoso_e3_bundle",
                offer_name="Bundle",
                licenses=5,
                term_end=(datetime.now(UTC) + timedelta(days=30)).date(),
                purchased_via="other_partner",
                billing_cycle="annual",
            )
            assert app.get(mid).state.originals["orig-1"].family == "office_365_e3"
        finally:
            app.close()

    def test_a_broken_file_is_refused_with_a_code(self, store_env, tmp_path):
        from domain.errors import InvalidInput

        broken = tmp_path / "offers.json"
        broken.write_text('{"families": [{"offers": "x"}]}')
        with pytest.raises(InvalidInput, match=r"^invalid_offer_catalogue:"):
            Tracker(env={**store_env, "OFFER_CATALOGUE": str(broken)})
        with pytest.raises(InvalidInput, match=r"^invalid_offer_catalogue:"):
            Tracker(env={**store_env, "OFFER_CATALOGUE": str(tmp_path / "absent.json")})


class TestBusinessTimeView:
    def test_a_fact_dated_before_its_subject_was_entered_is_left_out_and_named(self, app):
        now = datetime.now(UTC)
        mid = request(app, "contoso.com", at=now - timedelta(days=30))
        record(
            app,
            "original_subscription_recorded",
            mid,
            SALES,
            subscription_id="orig-1",
            offer_id="O365_E3",
            offer_name="E3",
            licenses=5,
            term_end=(now + timedelta(days=30)).date(),
            purchased_via="other_partner",
            billing_cycle="annual",
        )
        ten_days_ago = Context(ADMIN.principal, ADMIN.role, occurred_at=now - timedelta(days=10))
        cancelled = record(
            app,
            "original_subscription_cancelled",
            mid,
            ten_days_ago,
            subscription_id="orig-1",
            cancelled_by="customer",
        )
        past = app.as_of(mid, now - timedelta(days=5), "business")
        assert past.left_out == (cancelled.events[0].originator_version,)
        assert past.state.originals == {}
        later = app.as_of(mid, datetime.now(UTC), "business")
        assert later.state.originals["orig-1"].status == "cancelled"
