"""The next actions of a migration (domain/advice.py): given events, when `next_actions(state,
now)`, then the actions' kinds, texts, due dates and urgency."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.advice import Action, next_actions
from tests.unit.spec import (
    NOW,
    accepted,
    day,
    days,
    fact,
    gdap,
    given,
    on,
    original,
    provisioned,
    requested,
)


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind for a in actions]


def only(actions: list[Action]) -> Action:
    [action] = actions
    return action


def expired(sub: str = "orig-1", at: datetime | None = None):
    return on("original_subscription_expired", sub, at=at or days(-5))


def cancelled(sub: str = "orig-1", at: datetime | None = None):
    return on("original_subscription_cancelled", sub, cancelled_by="customer", at=at or days(-1))


def renew_off(sub: str = "orig-1"):
    return on("original_auto_renew_disabled", sub, at=days(-30))


# A migration whose replacement is in place and whose original still runs, auto-renew off.
REPLACED = (requested(), original(auto_renew=False), accepted(), provisioned())


class TestTheRequest:
    def test_a_new_request_asks_for_the_originals_and_the_acceptance(self):
        actions = next_actions(given(requested()).state, NOW)
        assert actions == [
            Action(
                "record_originals",
                "record the subscriptions Contoso Ltd holds today (subscription id, offer, "
                "licenses, term end, where it was bought), so the tracker knows what to replace",
                None,
            ),
            Action(
                "chase_acceptance",
                "ask the Global admin of contoso.onmicrosoft.com to accept the reseller "
                "relationship request sent on 2026-09-28: nothing can be provisioned until "
                "they do",
                None,
            ),
        ]

    def test_the_acceptance_is_due_by_the_nearest_term_end(self):
        state = given(
            requested(),
            original("orig-1", term_end=day(90), auto_renew=False),
            original("orig-2", term_end=day(45), auto_renew=False),
        ).state
        action = only(next_actions(state, NOW))
        assert action == Action(
            "chase_acceptance",
            "ask the Global admin of contoso.onmicrosoft.com to accept the reseller relationship "
            "request sent on 2026-09-28: nothing can be provisioned until they do, and orig-2 "
            "(O365 E3) expires on 2027-01-11 unreplaced",
            day(45),
            "orig-2",
            urgent=False,
        )
        assert only(next_actions(state, days(20))).urgent  # 25 days before the term end


class TestProvisioning:
    def test_each_unreplaced_original_is_to_be_replaced_before_its_term_end(self):
        state = given(requested(), original(auto_renew=False), accepted()).state
        assert next_actions(state, NOW) == [
            Action(
                "provision_replacement",
                "provision O365 E3 with 25 licenses to replace orig-1 before 2027-01-26",
                day(60),
                "orig-1",
                urgent=False,
            )
        ]

    def test_the_time_is_an_input_the_same_state_is_urgent_within_30_days(self):
        state = given(requested(), original(auto_renew=False), accepted()).state
        assert [a.urgent for a in next_actions(state, days(29))] == [False]
        assert [a.urgent for a in next_actions(state, days(30))] == [True]
        assert [a.urgent for a in next_actions(state, days(61))] == [True]  # overdue

    def test_a_retired_offer_needs_an_equivalent_and_then_a_reassignment(self):
        state = given(
            requested(),
            original(auto_renew=False, term_end=day(20)),
            accepted(),
            on("offer_retired", at=days(-10)),
        ).state
        assert next_actions(state, NOW) == [
            Action(
                "provision_equivalent",
                "O365 E3, the offer of orig-1, is no longer sold: provision an equivalent offer "
                "with 25 licenses to replace it before 2026-12-17, then reassign the users' "
                "licenses to it",
                day(20),
                "orig-1",
                urgent=True,
            )
        ]

    def test_a_shortfall_asks_for_the_missing_licenses(self):
        state = given(
            requested(), original(auto_renew=False), accepted(), provisioned(licenses=20)
        ).state
        shortfall, let_expire = next_actions(state, NOW)
        assert shortfall == Action(
            "provision_more_licenses",
            "provision 5 more O365 E3 licenses (offer family office_365_e3) on csp-1 or a new "
            "subscription: the replacements hold 20 licenses where 25 are needed, and users "
            "left without one lose their data",
            day(60),
            None,
            urgent=True,
        )
        assert let_expire.kind == "let_original_expire"

    def test_a_replacement_with_another_offer_needs_its_licenses_reassigned(self):
        state = given(
            requested(),
            original(auto_renew=False),
            accepted(),
            provisioned(offer="CFQ7TTC0LF8R:0001"),
        ).state
        reassign = next_actions(state, NOW)[0]
        assert reassign == Action(
            "reassign_licenses",
            "reassign the users' licenses from orig-1 to csp-1 (CFQ7TTC0LF8R:0001): it is "
            "another offer, so users do not move over by themselves",
            day(60),
            "csp-1",
            urgent=True,
        )
        done = given(*REPLACED[:-1], provisioned(offer="CFQ7TTC0LF8R:0001"))
        done = given(*done.facts, on("licenses_reassigned", "csp-1", at=days(-30)))
        assert "reassign_licenses" not in kinds(next_actions(done.state, NOW))

    def test_seats_added_are_to_be_reviewed_while_they_can_be_removed(self):
        state = given(
            requested(),
            original(auto_renew=False),
            accepted(),
            provisioned(at=days(-2)),
            on("licenses_changed", "csp-1", licenses=30, at=days(-1)),
        ).state
        assert [a for a in next_actions(state, NOW) if a.kind == "review_added_seats"] == [
            Action(
                "review_added_seats",
                "review the 25 seats added to csp-1 (O365_E3) on 2026-11-25: they can be "
                "removed until 2026-12-02, and not after",
                day(5),
                "csp-1",
            ),
            Action(
                "review_added_seats",
                "review the 5 seats added to csp-1 (O365_E3) on 2026-11-26: they can be "
                "removed until 2026-12-03, and not after",
                day(6),
                "csp-1",
            ),
        ]
        later = [a.text for a in next_actions(state, days(5.5)) if a.kind == "review_added_seats"]
        assert later == [
            "review the 5 seats added to csp-1 (O365_E3) on 2026-11-26: they can be removed "
            "until 2026-12-03, and not after"
        ]
        assert "review_added_seats" not in kinds(next_actions(state, days(6.5)))


class TestTheOriginalsEnd:
    def test_an_original_still_renewing_needs_auto_renew_off(self):
        state = given(requested(), original(), accepted(), provisioned()).state
        assert next_actions(state, NOW) == [
            Action(
                "turn_off_auto_renew",
                "turn auto-renew off for orig-1 (O365 E3) before 2027-01-26, or it renews for "
                "another term instead of expiring",
                day(60),
                "orig-1",
                urgent=False,
            )
        ]
        assert next_actions(state, days(35))[0].urgent

    def test_a_replaced_original_is_let_expire_not_cancelled(self):
        state = given(*REPLACED).state
        assert next_actions(state, NOW) == [
            Action(
                "let_original_expire",
                "let original orig-1 (O365 E3) expire on 2027-01-26, do not cancel it early: "
                "there are no refunds",
                day(60),
                "orig-1",
            )
        ]

    def test_an_unreplaced_expiry_counts_down_to_lost_access_and_deleted_data(self):
        state = given(
            requested(), original(term_end=day(-5), auto_renew=False), accepted(), expired()
        ).state
        in_grace = only(next_actions(state, NOW))
        assert in_grace == Action(
            "replace_in_grace_period",
            "orig-1 (O365 E3) expired on 2026-11-22 without a replacement, and its users lose "
            "access on 2026-12-22: provision O365 E3 with 25 licenses now",
            day(25),
            "orig-1",
            urgent=True,
        )
        assert only(next_actions(state, days(25))).kind == "replace_in_grace_period"
        lost = only(next_actions(state, days(26)))
        assert lost == Action(
            "replace_after_access_lost",
            "orig-1 (O365 E3) expired on 2026-11-22 without a replacement and its users lost "
            "access on 2026-12-22: provision O365 E3 with 25 licenses now, before its data is "
            "deleted on 2027-03-22",
            day(115),
            "orig-1",
            urgent=True,
        )
        deleted = only(next_actions(state, days(116)))
        assert (deleted.kind, deleted.due, deleted.urgent) == (
            "replace_after_data_deleted",
            None,
            True,
        )
        assert deleted.text.endswith(
            "its data was deleted on 2027-03-22: provision O365 E3 with 25 licenses now and "
            "restore the users' data from any backup"
        )

    def test_an_original_cancelled_without_replacement_has_lost_access(self):
        state = given(
            requested(), original(via="other_partner"), accepted(), cancelled(at=days(-3))
        ).state
        assert next_actions(state, NOW) == [
            Action(
                "replace_cancelled",
                "orig-1 (O365 E3) was cancelled on 2026-11-24 without a replacement, so its "
                "users have no access: provision O365 E3 with 25 licenses now",
                None,
                "orig-1",
                urgent=True,
            )
        ]


class TestCredits:
    def completed(self, *access):
        return given(
            requested(),
            original(),
            accepted(),
            *access,
            provisioned(),
            cancelled(),
            fact("migration_completed", at=days(-1)),
        )

    def test_with_admin_access_the_partner_asks_for_the_credit(self):
        state = self.completed(gdap(expires=days(300))).state
        assert next_actions(state, NOW) == [
            Action(
                "request_credit",
                "the customer may be eligible for an M365 credit for the cancelled orig-1 "
                "(O365 E3): ask M365 billing support on their behalf (you have GDAP until "
                "2027-09-23)",
                day(300),
                "orig-1",
            )
        ]

    def test_a_dap_that_never_expires_is_named_so(self):
        dap = fact(
            "admin_access_granted",
            kind="dap",
            expires_at=None,
            relationship_id="dap",
            at=days(-45),
        )
        action = only(next_actions(self.completed(dap).state, NOW))
        assert action.kind == "request_credit"
        assert action.due is None
        assert action.text.endswith("(you have DAP, which does not expire)")

    def test_without_admin_access_the_customer_asks(self):
        # The same state at two times: the GDAP ends 10 days from now.
        state = self.completed(gdap(expires=days(10))).state
        assert kinds(next_actions(state, NOW)) == ["request_credit"]
        later = only(next_actions(state, days(11)))
        assert later == Action(
            "ask_customer_for_credit",
            "the customer may be eligible for an M365 credit for the cancelled orig-1 "
            "(O365 E3): ask the customer to request the credit from M365 billing support, as "
            "you have no admin access (DAP or GDAP) to ask on their behalf",
            None,
            "orig-1",
        )

    def test_a_credit_unanswered_for_14_days_is_followed_up(self):
        state = given(
            *self.completed(gdap()).facts,
            on("credit_requested", requested_by="partner", at=days(-20)),
        ).state
        assert next_actions(state, NOW) == [
            Action(
                "follow_up_credit",
                "M365 billing support has not answered the credit request for orig-1 (O365 E3) "
                "made on 2026-11-07: follow up with M365 billing support",
                day(-6),
                "orig-1",
                urgent=True,  # overdue
            )
        ]
        assert next_actions(state, days(-6)) == []  # exactly 14 days after the request
        assert kinds(next_actions(state, days(-5.99))) == ["follow_up_credit"]

    def test_a_customer_request_is_followed_up_by_the_customer(self):
        state = given(
            *self.completed().facts,
            on("credit_requested", requested_by="customer", at=days(-15)),
        ).state
        action = only(next_actions(state, NOW))
        assert (action.kind, action.due, action.urgent) == ("follow_up_credit", day(-1), True)
        assert action.text.endswith(": ask the customer to follow up with M365 billing support")


class TestAdminAccess:
    def test_a_gdap_ending_within_30_days_is_renewed(self):
        state = given(*REPLACED, gdap(expires=days(40))).state
        assert "renew_gdap" not in kinds(next_actions(state, NOW))
        assert next_actions(state, days(15))[0] == Action(
            "renew_gdap",
            "renew the GDAP relationship gdap-1 before 2027-01-06 (the customer's Global admin "
            "approves a new one): after that you have no admin access to the tenant",
            day(40),
        )

    def test_another_relationship_lasting_longer_needs_no_renewal(self):
        state = given(*REPLACED, gdap(expires=days(20)), gdap("gdap-2", expires=days(200))).state
        assert "renew_gdap" not in kinds(next_actions(state, NOW))


class TestClosedMigrations:
    def test_a_completed_migration_gives_nothing(self):
        state = given(
            requested(),
            original(term_end=day(-1), auto_renew=False),
            accepted(),
            provisioned(),
            expired(at=days(-1)),
            fact("migration_completed", at=days(-1)),
        ).state
        assert state.stage == "completed"
        assert next_actions(state, NOW) == []

    def test_an_abandoned_migration_gives_no_provisioning_or_expiry_actions(self):
        state = given(
            requested(),
            original("orig-1", auto_renew=False),
            original("orig-2", term_end=day(-10), auto_renew=False),
            accepted(),
            expired("orig-2", at=days(-10)),
            fact("migration_abandoned", reason="customer stays direct", at=days(-1)),
        ).state
        assert next_actions(state, NOW) == []

    def test_abandoned_with_a_removable_replacement_removes_its_seats(self):
        state = given(
            requested(),
            original(),
            accepted(),
            provisioned(at=days(-2)),
            fact("migration_abandoned", reason="customer stays direct", at=days(-1)),
        ).state
        assert next_actions(state, NOW) == [
            Action(
                "end_double_billing",
                "the migration was abandoned but orig-1 (O365 E3) and its replacement csp-1 "
                "are both billed: remove the replacement's seats before 2026-12-02, while they "
                "can still be removed, and keep orig-1",
                day(5),
                "orig-1",
                urgent=True,
            )
        ]

    def test_abandoned_after_the_reduction_window_lets_the_original_expire(self):
        state = given(
            requested(),
            original(),
            accepted(),
            provisioned(at=days(-20)),
            fact("migration_abandoned", reason="customer stays direct", at=days(-1)),
        ).state
        assert next_actions(state, NOW) == [
            Action(
                "end_double_billing",
                "the migration was abandoned but orig-1 (O365 E3) and its replacement csp-1 "
                "are both billed: turn auto-renew off for orig-1 and let it expire on 2027-01-26 "
                "(cancelling it early gives no refund) and move its users to the replacement",
                day(60),
                "orig-1",
                urgent=True,
            )
        ]


class TestScopeAndOrder:
    def test_an_excluded_original_gives_nothing(self):
        facts = (requested(), original(term_end=day(5)), accepted())
        assert kinds(next_actions(given(*facts).state, NOW)) == [
            "provision_replacement",
            "turn_off_auto_renew",
        ]
        excluded = on("original_excluded", reason="not_migrating", at=days(-40))
        assert next_actions(given(*facts, excluded).state, NOW) == []

    def test_urgent_first_due_now_leading_then_by_due_date_undated_last(self):
        state = given(
            requested(),
            original("orig-1", term_end=day(90), auto_renew=False),
            original("orig-2", term_end=day(10), auto_renew=False),
            original("orig-3", via="other_partner", auto_renew=False),
            original("orig-4", auto_renew=False),
            accepted(),
            cancelled("orig-3", at=days(-3)),
            provisioned("csp-4", "orig-4", at=days(-1)),
        ).state
        ordered = [(a.kind, a.subscription_id, a.due, a.urgent) for a in next_actions(state, NOW)]
        assert ordered == [
            ("replace_cancelled", "orig-3", None, True),  # no access now: due now
            ("provision_replacement", "orig-2", day(10), True),
            ("review_added_seats", "csp-4", day(6), False),
            ("let_original_expire", "orig-4", day(60), False),
            ("provision_replacement", "orig-1", day(90), False),
        ]

    def test_the_time_is_an_input(self):
        state = given(*REPLACED).state
        at_dawn = datetime(2027, 1, 27, 0, 1, tzinfo=UTC)  # the day after the term end
        assert only(next_actions(state, NOW)).urgent is False
        assert only(next_actions(state, at_dawn)).urgent is True  # overdue
