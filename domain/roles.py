"""Who may record what. Each event class names its roles (`ROLES`); the sets are defined here
once, and docs/domain.md renders the table for people."""

from __future__ import annotations

from domain.errors import NotPermitted
from domain.vocabulary import PARTNER_ROLES, Role

SALES = frozenset({Role.ACCOUNT_ADMIN, Role.SALES_AGENT})
BILLING = frozenset({Role.ACCOUNT_ADMIN, Role.BILLING_AGENT})
ADMIN_ONLY = frozenset({Role.ACCOUNT_ADMIN})
PARTNER = PARTNER_ROLES
# Things the customer does that a partner's tool may record on the customer's behalf.
CUSTOMER_OBSERVED = PARTNER_ROLES | {Role.CUSTOMER}
SYSTEM_ONLY = frozenset({Role.SYSTEM})


def ensure_permitted(event_type: str, allowed: frozenset[Role], role: str) -> None:
    if role not in allowed:
        raise NotPermitted(
            message=f"role {role!r} may not record {event_type}",
            event_type=event_type,
            role=role,
            allowed=sorted(allowed),
        )
