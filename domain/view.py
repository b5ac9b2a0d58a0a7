"""The outward shape of a migration's state: one function used by the current-state read
model, time travel and the API, so every reader sees the same fields and the same flags."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain import advice, rules
from domain.state import MigrationState


def describe(
    migration_id: UUID | str, version: int, state: MigrationState, now: datetime
) -> dict[str, Any]:
    """A JSON-able description of `state`, with the risk flags as they stand at `now`."""
    next_end = state.next_term_end
    return {
        "id": str(migration_id),
        "partner_id": state.partner_id,
        "tenant_id": state.tenant_id,
        "tenant_guid": state.tenant_guid,
        "customer_name": state.customer_name,
        "customer_region": state.customer_region,
        "customer_country": state.customer_country,
        "channel": state.channel,
        "multi_partner": state.multi_partner,
        "stage": state.stage,
        "version": version,
        "risks": rules.risks(state, now),
        # What to do next, in plain words, most urgent first (domain.advice).
        "next_actions": [
            {
                "kind": a.kind,
                "text": a.text,
                "due": None if a.due is None else a.due.isoformat(),
                "subscription_id": a.subscription_id,
                "urgent": a.urgent,
            }
            for a in advice.next_actions(state, now)
        ],
        "licenses": {
            "original": state.original_licenses,
            "provisioned": state.provisioned_licenses,
        },
        "offers": [
            {
                "family": family,
                "original": original,
                "provisioned": provisioned,
                "required": required,
            }
            for family, (original, provisioned, required) in sorted(state.totals().items())
        ],
        "originals": [
            {
                "subscription_id": o.subscription_id,
                "offer_id": o.offer_id,
                "offer_name": o.offer_name,
                "family": o.family,
                "licenses": o.licenses,
                "status": o.status,
                "ended_at": o.ended_at.isoformat() if o.ended_at else None,
                "excluded": o.excluded,
                "replaced_by": list(o.replaced_by),
                "term_end": o.term_end.isoformat(),
                "auto_renew": o.auto_renew,
                "purchased_via": o.purchased_via,
                "credit": o.credit,
            }
            for o in state.originals.values()
        ],
        "replacements": [
            {
                "subscription_id": r.subscription_id,
                "replaces": list(r.replaces),
                "offer_id": r.offer_id,
                "offer_name": r.offer_name,
                "family": r.family,
                "licenses": r.licenses,
                "purchased_at": r.purchased_at.isoformat(),
                "reassignment_pending": r.reassignment_pending,
            }
            for r in state.replacements.values()
        ],
        "admin_access": [
            {
                "relationship_id": r.relationship_id,
                "kind": r.kind,
                "granted_at": r.granted_at.isoformat(),
                "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            }
            for r in state.admin_access.values()
            if r.live_at(now)
        ],
        "deadlines": rules.deadlines(state),
        "next_term_end": next_end.isoformat() if next_end else None,
        "accepted_by": state.accepted_by,
        "abandon_reason": state.abandon_reason,
    }
