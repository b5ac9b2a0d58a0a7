"""Property: random command sequences never break the migration's invariants."""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.commands import Command
from domain.context import Context
from domain.decider import EVENTS
from domain.errors import DomainError
from domain.migration import Migration, event_type
from domain.state import replay
from tests.unit.spec import NOW, OFFERS, TODAY

ROLES = ["account_admin", "sales_agent", "billing_agent", "customer"]
SUBS = ["orig-1", "orig-2", "orig-3"]
NEW = ["csp-1", "csp-2", "csp-3"]
OFFER_IDS = ["O365_E3", "o365_e3", "SPE_E3", "CFQ7TTC0LF8R:0001"]
AFTER_COMPLETION = {name for name, cls in EVENTS.items() if cls.AFTER_COMPLETION}


def cmd(type: str, **fields: object) -> st.SearchStrategy[Command]:
    """A command whose fields are drawn from the strategies given (or fixed values)."""
    return st.fixed_dictionaries(
        {k: v if isinstance(v, st.SearchStrategy) else st.just(v) for k, v in fields.items()}
    ).map(lambda f: Command(type, f))


sub, new, offer = st.sampled_from(SUBS), st.sampled_from(NEW), st.sampled_from(OFFER_IDS)
commands = st.one_of(
    cmd(
        "original_subscription_recorded",
        subscription_id=sub,
        offer_id=offer,
        offer_name="E3",
        licenses=st.integers(-1, 40),
        term_end=st.integers(-60, 120).map(lambda d: TODAY + timedelta(days=d)),
        purchased_via=st.sampled_from(["m365_admin_portal", "other_partner"]),
        billing_cycle="annual",
        auto_renew=st.booleans(),
    ),
    cmd("invitation_accepted", accepted_by="ga@contoso.example"),
    cmd(
        "subscription_provisioned",
        subscription_id=new,
        replaces=st.one_of(sub, st.lists(sub, min_size=1, max_size=3)),
        offer_id=offer,
        offer_name="E3",
        licenses=st.integers(0, 40),
    ),
    cmd("original_auto_renew_disabled", subscription_id=sub),
    cmd("offer_retired", subscription_id=sub),
    cmd("original_subscription_expired", subscription_id=sub),
    cmd("original_subscription_cancelled", subscription_id=sub, cancelled_by="customer"),
    cmd(
        "original_subscription_renewed",
        subscription_id=sub,
        term_end=st.integers(-10, 400).map(lambda d: TODAY + timedelta(days=d)),
    ),
    cmd("original_corrected", subscription_id=sub, licenses=st.integers(1, 40), reason="r"),
    cmd(
        "original_excluded",
        subscription_id=sub,
        reason=st.sampled_from(["kept_with_other_partner", "not_migrating"]),
    ),
    cmd("licenses_reassigned", subscription_id=new),
    cmd("licenses_changed", subscription_id=new, licenses=st.integers(-1, 40)),
    cmd("license_reduction_accepted", offer_id=offer, licenses=st.integers(1, 40), reason="r"),
    cmd(
        "admin_access_granted",
        kind=st.sampled_from(["dap", "gdap"]),
        expires_at=NOW + timedelta(days=365),
        relationship_id=st.sampled_from(["a", "b"]),
    ),
    cmd("admin_access_removed", relationship_id=st.sampled_from(["a", "b", None])),
    cmd(
        "credit_requested",
        subscription_id=sub,
        requested_by=st.sampled_from(["partner", "customer"]),
    ),
    cmd(
        "credit_resolved",
        subscription_id=sub,
        outcome=st.sampled_from(["granted", "denied"]),
        amount=Decimal("10.50"),
        currency="EUR",
    ),
    cmd("migration_abandoned", reason="customer chose another partner"),
    cmd("note_added", text="note"),
)


@settings(max_examples=300, deadline=None)
@given(
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(ROLES), st.integers(-20, 0), commands), max_size=40),
)
def test_random_command_sequences_keep_the_invariants(multi_partner, steps):
    sales = Context("sam", "sales_agent", occurred_at=NOW - timedelta(days=30))
    m = Migration.start(
        uuid4(),
        Command.of(
            "relationship_requested",
            partner_id="fabrikam",
            partner_region="europe",
            tenant_id="contoso.com",
            customer_name="Contoso",
            customer_region="SE",
            channel="direct",
            multi_partner=multi_partner,
        ),
        sales,
        NOW,
        OFFERS,
    )
    events = list(m.collect_events())
    for role, days_ago, command in steps:
        before = copy.deepcopy(m.state)
        was_closed = m.is_closed
        ctx = Context("someone", role, occurred_at=NOW + timedelta(days=days_ago))
        try:
            m.execute(command, ctx, NOW, OFFERS)
        except DomainError:
            # A refusal records nothing and changes nothing.
            assert m.collect_events() == []
            assert m.state == before
            continue
        new_events = list(m.collect_events())
        events += new_events
        if was_closed:
            # Only the credit tail and notes may follow completion; nothing follows abandonment.
            assert before.closed == "completed"
            assert {event_type(e) for e in new_events} <= AFTER_COMPLETION
        # Licenses are never negative (or zero) anywhere.
        assert all(o.licenses >= 1 for o in m.state.originals.values())
        assert all(r.licenses >= 1 for r in m.state.replacements.values())
        # Seats still reducible never exceed the seats held.
        for r in m.state.replacements.values():
            assert sum(n for _, n in r.seat_lots) <= r.licenses
        # Completed only when step 4's conditions hold, and then at once.
        if m.state.stage == "completed":
            assert m.state.is_complete
        elif not m.is_closed:
            assert not m.state.is_complete
    # Replay equals live state.
    assert replay(events) == m.state
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
