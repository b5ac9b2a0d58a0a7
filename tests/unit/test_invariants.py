"""Property: random command sequences never break the migration's invariants."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.context import Context
from domain.errors import DomainError
from domain.migration import event_type
from domain.rules import AFTER_COMPLETION
from domain.state import replay
from tests.factories import TODAY, requested

ROLES = ["account_admin", "sales_agent", "billing_agent"]
SUBS = ["orig-1", "orig-2", "orig-3"]
NEW = ["csp-1", "csp-2", "csp-3"]
OFFERS = ["E3", "E5"]

commands = st.one_of(
    st.tuples(
        st.just("record_original"),
        st.sampled_from(SUBS),
        st.integers(-1, 40),
        st.sampled_from(OFFERS),
        st.integers(-60, 120),
        st.sampled_from(["m365_admin_portal", "other_partner"]),
        st.booleans(),
    ),
    st.tuples(st.just("accept_invitation")),
    st.tuples(
        st.just("provision_subscription"),
        st.sampled_from(NEW),
        st.sampled_from(SUBS),
        st.sampled_from(OFFERS),
        st.integers(0, 40),
    ),
    st.tuples(st.just("disable_auto_renew"), st.sampled_from(SUBS)),
    st.tuples(st.just("retire_offer"), st.sampled_from(SUBS)),
    st.tuples(st.just("record_expiry"), st.sampled_from(SUBS)),
    st.tuples(st.just("record_cancellation"), st.sampled_from(SUBS)),
    st.tuples(st.just("reassign_licenses"), st.sampled_from(NEW)),
    st.tuples(st.just("change_licenses"), st.sampled_from(NEW), st.integers(-1, 40)),
    st.tuples(st.just("grant_admin_access"), st.sampled_from(["dap", "gdap"])),
    st.tuples(st.just("remove_admin_access")),
    st.tuples(
        st.just("request_credit"),
        st.sampled_from(SUBS),
        st.sampled_from(["partner", "customer"]),
    ),
    st.tuples(
        st.just("resolve_credit"),
        st.sampled_from(SUBS),
        st.sampled_from(["granted", "denied"]),
    ),
    st.tuples(st.just("abandon")),
    st.tuples(st.just("add_note")),
)


def apply(m, ctx, cmd) -> None:
    name, *args = cmd
    if name == "record_original":
        sub, licenses, offer, days, via, renew = args
        m.record_original(
            ctx,
            subscription_id=sub,
            offer_id=offer,
            offer_name=offer,
            licenses=licenses,
            term_end=TODAY + timedelta(days=days),
            purchased_via=via,
            billing_cycle="annual",
            auto_renew=renew,
        )
    elif name == "provision_subscription":
        sub, replaces, offer, licenses = args
        m.provision_subscription(
            ctx,
            subscription_id=sub,
            replaces=replaces,
            offer_id=offer,
            offer_name=offer,
            licenses=licenses,
        )
    elif name in ("disable_auto_renew", "retire_offer", "record_expiry", "reassign_licenses"):
        getattr(m, name)(ctx, subscription_id=args[0])
    elif name == "record_cancellation":
        m.record_cancellation(ctx, subscription_id=args[0], cancelled_by="customer")
    elif name == "change_licenses":
        m.change_licenses(ctx, subscription_id=args[0], licenses=args[1])
    elif name == "grant_admin_access":
        expires = datetime.now(UTC) + timedelta(days=365) if args[0] == "gdap" else None
        m.grant_admin_access(ctx, kind=args[0], expires_at=expires)
    elif name == "request_credit":
        m.request_credit(ctx, subscription_id=args[0], requested_by=args[1])
    elif name == "resolve_credit":
        m.resolve_credit(
            ctx,
            subscription_id=args[0],
            outcome=args[1],
            amount=Decimal("10.50"),
            currency="EUR",
        )
    elif name == "accept_invitation":
        m.accept_invitation(ctx, accepted_by="ga@contoso.example")
    elif name == "abandon":
        m.abandon(ctx, reason="customer chose another partner")
    elif name == "add_note":
        m.add_note(ctx, text="note")
    else:
        getattr(m, name)(ctx)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ROLES), commands), max_size=40))
def test_random_command_sequences_keep_the_invariants(steps):
    m = requested()
    events = list(m.collect_events())
    for role, cmd in steps:
        before = copy.deepcopy(m.state)
        was_closed = m.is_closed
        try:
            apply(m, Context("someone", role), cmd)
        except DomainError:
            # A refusal records nothing and changes nothing.
            assert m.collect_events() == []
            assert m.state == before
            continue
        new = list(m.collect_events())
        events += new
        if was_closed:
            # Only the credit tail and notes may follow completion; nothing follows abandonment.
            assert before.closed == "completed"
            assert {event_type(e) for e in new} <= AFTER_COMPLETION
        # Licenses are never negative (or zero) anywhere.
        assert all(o.licenses >= 1 for o in m.state.originals.values())
        assert all(r.licenses >= 1 for r in m.state.replacements.values())
        # Completed only when step 4's conditions hold, and then at once.
        if m.state.stage == "completed":
            assert m.state.is_complete
        elif not m.is_closed:
            assert not m.state.is_complete
    # Replay equals live state.
    assert replay(events) == m.state
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
