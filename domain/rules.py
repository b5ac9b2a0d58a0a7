"""Risk flags, deadlines and the thresholds behind them: pure functions of (state, now).

Flags that depend on "now" are never stored: callers pass the instant they care about (the read
time of a dashboard, an as_of time). Each timed flag is a bound on one date of the state
(`risk_dates`, `timed_bounds`): the read side filters and counts with the same bounds in SQL, so
the rule is written once.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from domain.state import MigrationState, Original
from domain.vocabulary import OriginalStatus, PurchasedVia, Risk, Stage

# "An expired subscription keeps access for 30 days, is then disabled, and is then deleted"
# (disabled for 90 days more: deleted about 120 days after the expiry).
GRACE_PERIOD = timedelta(days=30)
DELETION_AFTER = timedelta(days=120)
# An original ending within this window while still renewing, or still unreplaced, is at risk;
# so is admin access that ends within it.
ENDING_SOON = timedelta(days=30)
# "the best moment [to cancel] is near the natural term end": earlier loses prepaid time.
EARLY_CANCELLATION = timedelta(days=30)
# "New-commerce seats can be reduced only within 7 days" of being added.
REDUCTION_WINDOW = timedelta(days=7)
# The dashboard's look-ahead windows for originals ending without a replacement.
HORIZONS_DAYS = (7, 30, 90)

# The dates timed flags are decided on, in the order the read side stores them.
DATE_NAMES = (
    "next_term_end",  # open migrations: the nearest term end of an unreplaced active original
    "auto_renew_term_end",  # open: the nearest term end of an active original still renewing
    "expired_unreplaced_first",  # open or abandoned: the earliest expiry without replacement
    "expired_unreplaced_last",  # ... and the latest
    "admin_access_end",  # open: when the last admin relationship ends (None: never, or none)
)


def _day(value: datetime | None) -> date | None:
    return None if value is None else value.date()


def credit_eligible(original: Original) -> bool:
    """Only originals bought through the M365 admin portal may get a credit."""
    return original.purchased_via == PurchasedVia.M365_ADMIN_PORTAL


def replaced_at(state: MigrationState, original: Original) -> datetime | None:
    """The business time of the original's first replacement (None: not replaced)."""
    times = [state.replacements[r].purchased_at for r in original.replaced_by]
    return min(times, default=None)


def cancelled_before_replacement(state: MigrationState, original: Original) -> bool:
    """Judged by business time, whatever order the facts were recorded in."""
    if original.status != OriginalStatus.CANCELLED or original.ended_at is None:
        return False
    replaced = replaced_at(state, original)
    return replaced is None or original.ended_at < replaced


def is_early_cancellation(original: Original) -> bool:
    return (
        original.status == OriginalStatus.CANCELLED
        and original.ended_at is not None
        and original.ended_at.date() < original.term_end - EARLY_CANCELLATION
    )


def standing_risks(state: MigrationState) -> set[str]:
    """Flags that follow from the events alone, whatever the time: safe to store."""
    flags: set[str] = set()
    if state.shortfalls():
        flags.add(Risk.LICENSE_SHORTFALL)
    for original in state.in_scope:
        if cancelled_before_replacement(state, original):
            flags.add(Risk.CANCELLED_BEFORE_REPLACEMENT)
        if is_early_cancellation(original):
            flags.add(Risk.EARLY_CANCELLATION)
        cancelled = original.status == OriginalStatus.CANCELLED
        if cancelled and credit_eligible(original) and original.credit is None:
            flags.add(Risk.CREDIT_NOT_REQUESTED)
        if state.closed == Stage.ABANDONED and not original.ended and original.replaced_by:
            flags.add(Risk.DOUBLE_BILLING)
    if any(r.reassignment_pending for r in state.replacements.values()):
        flags.add(Risk.REASSIGNMENT_PENDING)
    return {str(f) for f in flags}


def risk_dates(state: MigrationState) -> dict[str, date | None]:
    """The `DATE_NAMES` of a state: what the timed flags are decided on."""
    scope = state.in_scope
    is_open = state.closed is None
    active = [o for o in scope if o.status == OriginalStatus.ACTIVE]
    expired = [
        o.ended_at.date()
        for o in scope
        if o.status == OriginalStatus.EXPIRED and o.ended_at is not None and not o.replaced_by
    ]
    completed = state.closed == Stage.COMPLETED
    return {
        "next_term_end": state.next_term_end if is_open else None,
        "auto_renew_term_end": min((o.term_end for o in active if o.auto_renew), default=None)
        if is_open
        else None,
        "expired_unreplaced_first": None if completed else min(expired, default=None),
        "expired_unreplaced_last": None if completed else max(expired, default=None),
        "admin_access_end": _day(state.admin_access_end) if is_open else None,
    }


def timed_bounds(today: date) -> dict[str, tuple[str, date | None, date | None]]:
    """Each timed flag as (date name, lowest day, highest day), both inclusive: the flag is on
    when that date of the state lies within the bounds."""
    soon = today + ENDING_SOON
    return {
        Risk.EXPIRING_UNREPLACED: ("next_term_end", None, soon),
        Risk.AUTO_RENEW_ON: ("auto_renew_term_end", None, soon),
        # Some expiry within the last 30 days: the latest one is.
        Risk.GRACE_PERIOD: ("expired_unreplaced_last", today - GRACE_PERIOD, None),
        # Some expiry more than 30 (120) days ago: the earliest one is.
        Risk.ACCESS_LOST: ("expired_unreplaced_first", None, today - GRACE_PERIOD - _ONE_DAY),
        Risk.DATA_LOSS: ("expired_unreplaced_first", None, today - DELETION_AFTER - _ONE_DAY),
        Risk.ADMIN_ACCESS_EXPIRING: ("admin_access_end", today, soon),
    }


_ONE_DAY = timedelta(days=1)


def timed_risks(state: MigrationState, now: datetime) -> set[str]:
    """Flags that depend on the instant `now`: compute at read time, never store."""
    dates = risk_dates(state)
    flags = set()
    for risk, (name, low, high) in timed_bounds(now.date()).items():
        day = dates[name]
        if day is not None and (low is None or day >= low) and (high is None or day <= high):
            flags.add(str(risk))
    return flags


def risks(state: MigrationState, now: datetime) -> list[str]:
    """All flags at `now`, sorted for stable output."""
    return sorted(standing_risks(state) | timed_risks(state, now))


# A credit request billing support has not answered for this long needs a follow-up.
CREDIT_FOLLOW_UP = timedelta(days=14)


# Deadlines that ask nothing once passed: the chance lapsed (a closed reduction window cannot
# be used any more), so they are not listed as overdue.
LAPSE_WHEN_PASSED = frozenset({"reduction_window_closes"})


def _item(kind: str, day: date, what: str, **about: str) -> dict[str, str]:
    return {"kind": kind, "date": day.isoformat(), "what": what, **about}


def deadlines(state: MigrationState) -> list[dict[str, str]]:
    """Every dated obligation of a migration, soonest first: each `{kind, date, what}` plus the
    subscription or relationship it is about. Kinds:

    - `auto_renew_off_by`: an active original still renewing: turn auto-renew off before its
      term end, or it renews instead of expiring (open migrations);
    - `access_lost`, `data_deleted`: after an unreplaced expiry, users lose access 30 days after
      it and the data is deleted about 120 days after it (open or abandoned migrations);
    - `gdap_expires`: a live GDAP relationship ends (open migrations);
    - `reduction_window_closes`: the last day seats added to a replacement can be removed;
    - `credit_follow_up`: a credit request unanswered for 14 days (any migration: the billing
      tail follows completion).
    """
    out: list[dict[str, str]] = []
    is_open = state.closed is None
    for o in state.in_scope:
        if is_open and o.status == OriginalStatus.ACTIVE and o.auto_renew:
            out.append(
                _item(
                    "auto_renew_off_by",
                    o.term_end,
                    f"turn auto-renew off for {o.subscription_id} before its term ends",
                    subscription_id=o.subscription_id,
                )
            )
        if o.status == OriginalStatus.EXPIRED and o.ended_at is not None and not o.replaced_by:
            expired = o.ended_at.date()
            if state.closed != Stage.COMPLETED:
                out.append(
                    _item(
                        "access_lost",
                        expired + GRACE_PERIOD,
                        f"users of {o.subscription_id} lose access (expired, not replaced)",
                        subscription_id=o.subscription_id,
                    )
                )
                out.append(
                    _item(
                        "data_deleted",
                        expired + DELETION_AFTER,
                        f"the data of {o.subscription_id} is deleted",
                        subscription_id=o.subscription_id,
                    )
                )
        if o.credit == "requested" and o.credit_requested_at is not None:
            out.append(
                _item(
                    "credit_follow_up",
                    o.credit_requested_at.date() + CREDIT_FOLLOW_UP,
                    f"ask M365 billing support about the credit for {o.subscription_id}",
                    subscription_id=o.subscription_id,
                )
            )
    if is_open:
        for r in state.admin_access.values():
            if r.kind == "gdap" and r.removed_at is None and r.expires_at is not None:
                out.append(
                    _item(
                        "gdap_expires",
                        r.expires_at.date(),
                        f"GDAP relationship {r.relationship_id} ends",
                        relationship_id=r.relationship_id,
                    )
                )
    for rep in state.replacements.values():
        for added, seats in rep.seat_lots:
            out.append(
                _item(
                    "reduction_window_closes",
                    (added + REDUCTION_WINDOW).date(),
                    f"last day to remove the {seats} seats added to {rep.subscription_id}",
                    subscription_id=rep.subscription_id,
                )
            )
    return sorted(out, key=lambda d: (d["date"], d["kind"]))
