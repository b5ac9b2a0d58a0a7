"""The seed's vocabulary: the closed sets of values that events and state use.

Events store the plain string values, so stored events never depend on these classes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import cast


class Channel(StrEnum):
    """How the customer buys today, before moving to CSP."""

    DIRECT = "direct"  # e.g. the M365 admin portal
    OTHER_PARTNER = "other_partner"
    OTHER_CHANNEL = "other_channel"


class PurchasedVia(StrEnum):
    M365_ADMIN_PORTAL = "m365_admin_portal"
    OTHER_PARTNER = "other_partner"
    OTHER_CHANNEL = "other_channel"


class BillingCycle(StrEnum):
    MONTHLY = "monthly"
    ANNUAL = "annual"
    TRIENNIAL = "triennial"


class Role(StrEnum):
    ACCOUNT_ADMIN = "account_admin"
    SALES_AGENT = "sales_agent"
    BILLING_AGENT = "billing_agent"
    CUSTOMER = "customer"  # observed: done by the customer, recorded by the partner's tool
    SYSTEM = "system"  # recorded by the tracker itself (e.g. migration_completed)


PARTNER_ROLES = frozenset({Role.ACCOUNT_ADMIN, Role.SALES_AGENT, Role.BILLING_AGENT})


class AdminAccessKind(StrEnum):
    DAP = "dap"
    GDAP = "gdap"


class Party(StrEnum):
    """Who cancels a subscription or asks for a credit."""

    CUSTOMER = "customer"
    PARTNER = "partner"


class ExclusionReason(StrEnum):
    """Why an original is out of a migration's scope."""

    KEPT_WITH_OTHER_PARTNER = "kept_with_other_partner"  # multi-partner customers
    NOT_MIGRATING = "not_migrating"  # the customer drops it
    RECORDED_IN_ERROR = "recorded_in_error"


class CreditOutcome(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"


class Stage(StrEnum):
    INVITED = "invited"
    ACCEPTED = "accepted"
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


class OriginalStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Risk(StrEnum):
    LICENSE_SHORTFALL = "license_shortfall"
    CANCELLED_BEFORE_REPLACEMENT = "cancelled_before_replacement"
    GRACE_PERIOD = "grace_period"  # expired, users keep access for 30 days
    ACCESS_LOST = "access_lost"  # expired more than 30 days ago: disabled
    DATA_LOSS = "data_loss"  # expired more than 120 days ago: deleted
    EARLY_CANCELLATION = "early_cancellation"
    CREDIT_NOT_REQUESTED = "credit_not_requested"
    REASSIGNMENT_PENDING = "reassignment_pending"
    AUTO_RENEW_ON = "auto_renew_on"
    EXPIRING_UNREPLACED = "expiring_unreplaced"
    ADMIN_ACCESS_EXPIRING = "admin_access_expiring"
    DOUBLE_BILLING = "double_billing"  # abandoned with a live original beside its replacement


def parse(enum: type[StrEnum], value: object, field: str) -> str:
    """Return the value if it belongs to the enum, else refuse with invalid_<field>."""
    from domain.errors import InvalidInput

    try:
        # Not necessarily a str: the enum's lookup refuses anything else with ValueError.
        return enum(cast(str, value)).value
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(
            f"invalid_{field}", f"{field} must be one of: {allowed}", field=field, value=str(value)
        ) from None
