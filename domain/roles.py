"""Who may record what: one table, read by the aggregate before every decision.

docs/domain.md renders the same table for people.
"""

from __future__ import annotations

from domain.errors import NotPermitted
from domain.vocabulary import PARTNER_ROLES, Role

_SALES = frozenset({Role.ACCOUNT_ADMIN, Role.SALES_AGENT})
_BILLING = frozenset({Role.ACCOUNT_ADMIN, Role.BILLING_AGENT})
# Things the customer does that a partner's tool may record on the customer's behalf.
_CUSTOMER_OBSERVED = PARTNER_ROLES | {Role.CUSTOMER}

PERMISSIONS: dict[str, frozenset[Role]] = {
    "relationship_requested": _SALES,
    "original_subscription_recorded": _SALES,
    "subscription_provisioned": _SALES,
    "credit_requested": _BILLING | {Role.CUSTOMER},
    "credit_resolved": _BILLING,
    "invitation_accepted": _CUSTOMER_OBSERVED,
    "original_auto_renew_disabled": _CUSTOMER_OBSERVED,
    "original_subscription_expired": _CUSTOMER_OBSERVED | {Role.SYSTEM},
    "original_subscription_cancelled": _CUSTOMER_OBSERVED,
    "admin_access_granted": PARTNER_ROLES,
    "admin_access_removed": _CUSTOMER_OBSERVED,
    "offer_retired": PARTNER_ROLES,
    "licenses_reassigned": _CUSTOMER_OBSERVED,
    "licenses_changed": PARTNER_ROLES,
    "migration_abandoned": PARTNER_ROLES,
    "note_added": PARTNER_ROLES,
    "migration_completed": frozenset({Role.SYSTEM}),
}


def ensure_permitted(event_type: str, role: str) -> None:
    allowed = PERMISSIONS[event_type]
    if role not in allowed:
        raise NotPermitted(
            message=f"role {role!r} may not record {event_type}",
            event_type=event_type,
            role=role,
            allowed=sorted(allowed),
        )
