"""The dashboard summary computed directly from domain states: the oracle for the view."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

from domain import rules
from domain.state import MigrationState
from domain.vocabulary import OriginalStatus, Stage
from projections.rows import decimal_text


def summary_of(states: list[MigrationState], now: datetime) -> dict:
    today = now.date()
    stages = Counter(s.stage for s in states)
    risks = Counter(r for s in states for r in rules.risks(s, now))
    originals = [o for s in states for o in s.originals.values()]
    open_unreplaced = [
        o.term_end
        for s in states
        if not s.closed
        for o in s.in_scope
        if o.status == OriginalStatus.ACTIVE and not o.replaced_by
    ]
    amounts: dict[str, Decimal] = {}
    for s in states:
        for currency, amount in s.credits_granted.items():
            amounts[currency] = amounts.get(currency, Decimal(0)) + amount
    return {
        "migrations": len(states),
        "stages": {stage.value: stages[stage.value] for stage in Stage},
        "risks": dict(sorted(risks.items())),
        "licenses": {
            "original": sum(s.original_licenses for s in states),
            "provisioned": sum(s.provisioned_licenses for s in states),
        },
        "ending_unreplaced": {
            str(d): sum(1 for end in open_unreplaced if today <= end <= today + timedelta(days=d))
            for d in rules.HORIZONS_DAYS
        },
        "credits": {
            "requested": sum(1 for o in originals if o.credit is not None),
            "granted": sum(1 for o in originals if o.credit == "granted"),
            "denied": sum(1 for o in originals if o.credit == "denied"),
            "granted_amount": {c: decimal_text(a) for c, a in sorted(amounts.items())},
        },
    }
