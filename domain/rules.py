"""Risk flags and the thresholds behind them: pure functions of (state, now).

Every threshold of the seed lives here, once. Flags that depend on "now" are never stored:
callers pass the instant they care about (the read time of a dashboard, an as_of time).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from domain.vocabulary import OriginalStatus, PurchasedVia, Risk

if TYPE_CHECKING:
    from domain.state import MigrationState, Original

# "an expired subscription keeps users' access for 30 days, then is disabled, then deleted"
GRACE_PERIOD = timedelta(days=30)
# An original ending within this window while still renewing, or still unreplaced, is at risk.
ENDING_SOON = timedelta(days=30)
# "the best moment [to cancel] is near the natural term end": earlier loses prepaid time.
EARLY_CANCELLATION = timedelta(days=30)
# "new-commerce quantities can only be reduced within 7 days of purchase"
REDUCTION_WINDOW = timedelta(days=7)
# GDAP relationships last at most 730 days.
GDAP_MAX_DURATION = timedelta(days=730)
# The cancellation that completes a migration is what a credit is asked for, and M365 billing
# support answers weeks later: this billing tail (and notes) may follow completion. Everything
# else is refused once a migration is completed or abandoned.
AFTER_COMPLETION = frozenset({"credit_requested", "credit_resolved", "note_added"})
# The dashboard's look-ahead windows for originals ending without a replacement.
HORIZONS_DAYS = (7, 30, 90)


def grace_period_end(original: Original) -> date:
    """The last day users of an expired original keep access."""
    return original.term_end + GRACE_PERIOD


def is_early_cancellation(term_end: date, cancelled_at: datetime) -> bool:
    return cancelled_at.date() < term_end - EARLY_CANCELLATION


def is_late_reduction(purchased_at: datetime, changed_at: datetime) -> bool:
    return changed_at > purchased_at + REDUCTION_WINDOW


def credit_eligible(original: Original) -> bool:
    """Only originals bought through the M365 admin portal may get a credit."""
    return original.purchased_via == PurchasedVia.M365_ADMIN_PORTAL


def standing_risks(state: MigrationState) -> set[str]:
    """Flags that follow from the events alone, whatever the time: safe to store."""
    flags: set[str] = set()
    for original in state.originals.values():
        replacement = state.replacement_of(original)
        if replacement is not None and replacement.licenses < original.licenses:
            flags.add(Risk.LICENSE_SHORTFALL)
        if original.status == OriginalStatus.CANCELLED:
            if original.cancelled_before_replacement:
                flags.add(Risk.CANCELLED_BEFORE_REPLACEMENT)
            if original.early_cancellation:
                flags.add(Risk.EARLY_CANCELLATION)
            if credit_eligible(original) and original.credit is None:
                flags.add(Risk.CREDIT_NOT_REQUESTED)
    for replacement in state.replacements.values():
        if replacement.reassignment_pending:
            flags.add(Risk.REASSIGNMENT_PENDING)
        if replacement.late_reduction:
            flags.add(Risk.LATE_LICENSE_REDUCTION)
    return {str(f) for f in flags}


def timed_risks(state: MigrationState, now: datetime) -> set[str]:
    """Flags that depend on the instant `now`: compute at read time, never store."""
    if state.closed:
        return set()
    today = now.date()
    flags: set[str] = set()
    for original in state.originals.values():
        if original.replaced_by is not None:
            continue
        if original.status == OriginalStatus.EXPIRED:
            past = today > grace_period_end(original)
            flags.add(Risk.DATA_LOSS if past else Risk.GRACE_PERIOD)
        elif original.status == OriginalStatus.ACTIVE and original.term_end - today <= ENDING_SOON:
            flags.add(Risk.EXPIRING_UNREPLACED)
    for original in state.originals.values():
        ending_soon = original.term_end - today <= ENDING_SOON
        if original.status == OriginalStatus.ACTIVE and original.auto_renew and ending_soon:
            flags.add(Risk.AUTO_RENEW_ON)
    return {str(f) for f in flags}


def risks(state: MigrationState, now: datetime) -> list[str]:
    """All flags at `now`, sorted for stable output."""
    return sorted(standing_risks(state) | timed_risks(state, now))


def deadlines(state: MigrationState) -> list[dict[str, str]]:
    """Dates by which something must happen: the end of each open grace period."""
    out = []
    for original in state.originals.values():
        if original.status == OriginalStatus.EXPIRED and original.replaced_by is None:
            out.append(
                {
                    "kind": "grace_period_end",
                    "subscription_id": original.subscription_id,
                    "date": grace_period_end(original).isoformat(),
                }
            )
    return sorted(out, key=lambda d: d["date"])
