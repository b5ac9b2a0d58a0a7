"""The next actions of a migration, in plain words: what partner operations staff do next, and
by when. A pure function of (state, now), like the risk flags of `domain.rules`, whose
thresholds and helpers it uses: each action family is one small function below.

An action is urgent when users' access, data or money are at risk now, or when it is overdue
(its due date is before the day of `now`). `next_actions` lists urgent actions first (an
urgent one without a date, such as users without access, is due now and leads), then the rest,
each part by due date with undated actions last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from domain.rules import (
    CREDIT_FOLLOW_UP,
    DELETION_AFTER,
    ENDING_SOON,
    GRACE_PERIOD,
    REDUCTION_WINDOW,
    credit_eligible,
    timed_risks,
)
from domain.state import MigrationState, Original, Replacement
from domain.vocabulary import OriginalStatus, Party, Risk, Stage


@dataclass(frozen=True)
class Action:
    kind: str  # machine-readable, e.g. "provision_replacement"
    text: str  # one plain-English sentence for partner operations staff
    due: date | None  # by when (None: no date applies)
    subscription_id: str | None = None
    urgent: bool = False  # users' access, data or money are at risk now, or it is overdue


def next_actions(state: MigrationState, now: datetime) -> list[Action]:
    """What the partner should do next, most urgent first (urgent ones first, those due now
    leading, then by due date, undated last)."""
    actions = [action for advise in _ADVISERS for action in advise(state, now)]
    return sorted(actions, key=_order)


def _order(a: Action) -> tuple[bool, bool, date]:
    """Urgent first; an urgent action without a date is due now, so it leads; otherwise by due
    date, undated actions last."""
    if a.urgent and a.due is None:
        return (False, False, date.min)
    return (not a.urgent, a.due is None, a.due or date.min)


Advice = Iterator[Action]


def _action(
    kind: str,
    text: str,
    due: date | None,
    now: datetime,
    subscription_id: str | None = None,
    urgent: bool = False,
) -> Action:
    overdue = due is not None and due < now.date()
    return Action(kind, text, due, subscription_id, urgent or overdue)


def _soon(day: date, now: datetime) -> bool:
    """Within `ENDING_SOON` of now, or past: the window of `expiring_unreplaced`."""
    return day <= now.date() + ENDING_SOON


def _unreplaced(state: MigrationState) -> list[Original]:
    """The active originals in scope without a replacement (those `next_term_end` looks at)."""
    return [o for o in state.in_scope if not o.ended and not o.replaced_by]


def _what_replaces(o: Original) -> str:
    offer = (
        f"an offer equivalent to the retired {o.offer_name}" if o.offer_retired else o.offer_name
    )
    return f"{offer} with {o.licenses} licenses"


def _open_lots(r: Replacement, now: datetime) -> list[tuple[datetime, int]]:
    """The seat lots of `r` that can still be removed at `now` (rule 7)."""
    return [(added, n) for added, n in r.seat_lots if added <= now < added + REDUCTION_WINDOW]


# -- step 1: the request ---------------------------------------------------------------------
def _record_originals(state: MigrationState, now: datetime) -> Advice:
    if state.closed is None and not state.originals:
        yield _action(
            "record_originals",
            f"record the subscriptions {state.customer_name} holds today (subscription id, "
            "offer, licenses, term end, where it was bought), so the tracker knows what to "
            "replace",
            None,
            now,
        )


def _chase_acceptance(state: MigrationState, now: datetime) -> Advice:
    if state.stage != Stage.INVITED:
        return
    sent = f" sent on {state.requested_at.date()}" if state.requested_at else ""
    text = (
        f"ask the Global admin of {state.tenant_id} to accept the reseller relationship "
        f"request{sent}: nothing can be provisioned until they do"
    )
    due = state.next_term_end
    if due is None:
        yield _action("chase_acceptance", text, None, now)
        return
    first = min(_unreplaced(state), key=lambda o: o.term_end)
    ends = "renews" if first.auto_renew else "expires"
    text += f", and {first.subscription_id} ({first.offer_name}) {ends} on {due} unreplaced"
    yield _action("chase_acceptance", text, due, now, first.subscription_id, _soon(due, now))


# -- step 2: provisioning ----------------------------------------------------------------------
def _provision(state: MigrationState, now: datetime) -> Advice:
    if state.closed is not None or state.accepted_at is None:
        return
    for o in _unreplaced(state):
        urgent = _soon(o.term_end, now)
        if o.offer_retired:
            text = (
                f"{o.offer_name}, the offer of {o.subscription_id}, is no longer sold: provision "
                f"an equivalent offer with {o.licenses} licenses to replace it before "
                f"{o.term_end}, then reassign the users' licenses to it"
            )
            yield _action("provision_equivalent", text, o.term_end, now, o.subscription_id, urgent)
        else:
            text = (
                f"provision {o.offer_name} with {o.licenses} licenses to replace "
                f"{o.subscription_id} before {o.term_end}"
            )
            yield _action("provision_replacement", text, o.term_end, now, o.subscription_id, urgent)


def _shortfalls(state: MigrationState, now: datetime) -> Advice:
    if state.closed is not None:
        return
    totals = state.totals()
    for family, missing in state.shortfalls().items():
        _, provisioned, required = totals[family]
        originals = [o for o in state.in_scope if o.family == family]
        offers = " / ".join(sorted({o.offer_name for o in originals}))
        reps = [r.subscription_id for r in state.replacements.values() if r.family == family]
        ends = [o.term_end for o in originals if not o.ended]
        text = (
            f"provision {missing} more {offers} licenses (offer family {family}) on "
            f"{', '.join(reps)} or a new subscription: the replacements hold {provisioned} "
            f"licenses where {required} are needed, and users left without one lose their data"
        )
        yield _action("provision_more_licenses", text, min(ends, default=None), now, urgent=True)


def _reassignments(state: MigrationState, now: datetime) -> Advice:
    if state.closed is not None:
        return
    for r in state.replacements.values():
        if r.reassignment_pending:
            originals = [state.originals[s] for s in r.replaces]
            text = (
                f"reassign the users' licenses from {', '.join(r.replaces)} to {r.subscription_id} "
                f"({r.offer_name}): it is another offer, so users do not move over by themselves"
            )
            due = min((o.term_end for o in originals if not o.ended), default=None)
            yield _action("reassign_licenses", text, due, now, r.subscription_id, urgent=True)


def _added_seats(state: MigrationState, now: datetime) -> Advice:
    if state.closed is not None:
        return
    for r in state.replacements.values():
        for added, seats in _open_lots(r, now):
            closes = (added + REDUCTION_WINDOW).date()
            text = (
                f"review the {seats} seats added to {r.subscription_id} ({r.offer_name}) on "
                f"{added.date()}: they can be removed until {closes}, and not after"
            )
            yield _action("review_added_seats", text, closes, now, r.subscription_id)


# -- step 3: the originals end ----------------------------------------------------------------
def _auto_renew(state: MigrationState, now: datetime) -> Advice:
    if state.closed is not None:
        return
    for o in state.in_scope:
        if not o.ended and o.auto_renew:
            text = (
                f"turn auto-renew off for {o.subscription_id} ({o.offer_name}) before "
                f"{o.term_end}, or it renews for another term instead of expiring"
            )
            urgent = _soon(o.term_end, now)
            yield _action("turn_off_auto_renew", text, o.term_end, now, o.subscription_id, urgent)


def _let_expire(state: MigrationState, now: datetime) -> Advice:
    if state.closed is not None:
        return
    for o in state.in_scope:
        if not o.ended and not o.auto_renew and o.replaced_by:
            text = (
                f"let original {o.subscription_id} ({o.offer_name}) expire on {o.term_end}, do "
                "not cancel it early: there are no refunds"
            )
            yield _action("let_original_expire", text, o.term_end, now, o.subscription_id)


def _ended_unreplaced(state: MigrationState, now: datetime) -> Advice:
    if state.closed is not None:
        return
    today = now.date()
    for o in state.in_scope:
        if o.replaced_by or o.ended_at is None:
            continue
        sub, ended = o.subscription_id, o.ended_at.date()
        now_text = f"provision {_what_replaces(o)} now"
        if o.status == OriginalStatus.CANCELLED:
            text = (
                f"{sub} ({o.offer_name}) was cancelled on {ended} without a replacement, so its "
                f"users have no access: {now_text}"
            )
            yield _action("replace_cancelled", text, None, now, sub, urgent=True)
            continue
        access_until, deleted_on = ended + GRACE_PERIOD, ended + DELETION_AFTER
        what = f"{sub} ({o.offer_name}) expired on {ended} without a replacement"
        if today <= access_until:
            kind, due = "replace_in_grace_period", access_until
            text = f"{what}, and its users lose access on {access_until}: {now_text}"
        elif today <= deleted_on:
            kind, due = "replace_after_access_lost", deleted_on
            text = (
                f"{what} and its users lost access on {access_until}: {now_text}, before its "
                f"data is deleted on {deleted_on}"
            )
        else:
            kind, due = "replace_after_data_deleted", None
            text = (
                f"{what} and its data was deleted on {deleted_on}: {now_text} and restore the "
                "users' data from any backup"
            )
        yield _action(kind, text, due, now, sub, urgent=True)


# -- credits, admin access and abandonment ----------------------------------------------------
def _credits(state: MigrationState, now: datetime) -> Advice:
    for o in state.in_scope:
        if o.status != OriginalStatus.CANCELLED or not credit_eligible(o) or o.credit:
            continue
        maybe = (
            f"the customer may be eligible for an M365 credit for the cancelled "
            f"{o.subscription_id} ({o.offer_name})"
        )
        if not state.has_admin_access(now):
            text = (
                f"{maybe}: ask the customer to request the credit from M365 billing support, "
                "as you have no admin access (DAP or GDAP) to ask on their behalf"
            )
            yield _action("ask_customer_for_credit", text, None, now, o.subscription_id)
            continue
        live = sorted({r.kind.upper() for r in state.admin_access.values() if r.live_at(now)})
        end = state.admin_access_end.date() if state.admin_access_end else None
        until = f" until {end}" if end else ", which does not expire"
        text = (
            f"{maybe}: ask M365 billing support on their behalf (you have {'/'.join(live)}{until})"
        )
        yield _action("request_credit", text, end, now, o.subscription_id)


def _credit_follow_ups(state: MigrationState, now: datetime) -> Advice:
    for o in state.in_scope:
        asked = o.credit_requested_at
        if o.credit != "requested" or asked is None or now - asked <= CREDIT_FOLLOW_UP:
            continue
        who = "" if o.credit_requested_by == Party.PARTNER else "ask the customer to "
        text = (
            f"M365 billing support has not answered the credit request for {o.subscription_id} "
            f"({o.offer_name}) made on {asked.date()}: {who}follow up with M365 billing support"
        )
        due = asked.date() + CREDIT_FOLLOW_UP
        yield _action("follow_up_credit", text, due, now, o.subscription_id)


def _gdap(state: MigrationState, now: datetime) -> Advice:
    end = state.admin_access_end
    if end is None or Risk.ADMIN_ACCESS_EXPIRING not in timed_risks(state, now):
        return
    ending = [
        r.relationship_id
        for r in state.admin_access.values()
        if r.removed_at is None and r.expires_at == end
    ]
    text = (
        f"renew the GDAP relationship {', '.join(ending)} before {end.date()} (the customer's "
        "Global admin approves a new one): after that you have no admin access to the tenant"
    )
    yield _action("renew_gdap", text, end.date(), now)


def _double_billing(state: MigrationState, now: datetime) -> Advice:
    if state.closed != Stage.ABANDONED:
        return
    for o in state.in_scope:
        if o.ended or not o.replaced_by:
            continue
        reps = [state.replacements[s] for s in o.replaced_by]
        both = (
            f"the migration was abandoned but {o.subscription_id} ({o.offer_name}) and its "
            f"replacement {', '.join(r.subscription_id for r in reps)} are both billed"
        )
        lots = [_open_lots(r, now) for r in reps]
        if all(sum(n for _, n in open_) == r.licenses for r, open_ in zip(reps, lots, strict=True)):
            closes = min((added + REDUCTION_WINDOW).date() for open_ in lots for added, _ in open_)
            text = (
                f"{both}: remove the replacement's seats before {closes}, while they can still be "
                f"removed, and keep {o.subscription_id}"
            )
            due = closes
        else:
            let = f"let {o.subscription_id}"
            if o.auto_renew:
                let = f"turn auto-renew off for {o.subscription_id} and let it"
            text = (
                f"{both}: {let} expire on {o.term_end} (cancelling it early gives no refund) "
                "and move its users to the replacement"
            )
            due = o.term_end
        yield _action("end_double_billing", text, due, now, o.subscription_id, urgent=True)


_ADVISERS: tuple[Callable[[MigrationState, datetime], Advice], ...] = (
    _record_originals,
    _chase_acceptance,
    _provision,
    _shortfalls,
    _reassignments,
    _added_seats,
    _auto_renew,
    _let_expire,
    _ended_unreplaced,
    _credits,
    _credit_follow_ups,
    _gdap,
    _double_billing,
)
