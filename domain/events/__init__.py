"""Every event of a migration, by the step of the seed it belongs to."""

from eventsourcing.utils import register_topic

from domain.events.closing import (
    CreditRequested,
    CreditResolved,
    MigrationAbandoned,
    MigrationCompleted,
    NoteAdded,
)
from domain.events.originals import (
    OfferRetired,
    OriginalAutoRenewDisabled,
    OriginalCorrected,
    OriginalExcluded,
    OriginalSubscriptionCancelled,
    OriginalSubscriptionExpired,
    OriginalSubscriptionRecorded,
    OriginalSubscriptionRenewed,
)
from domain.events.replacements import (
    LicenseReductionAccepted,
    LicensesChanged,
    LicensesReassigned,
    SubscriptionProvisioned,
)
from domain.events.requests import (
    AdminAccessGranted,
    AdminAccessRemoved,
    InvitationAccepted,
    RelationshipRequested,
    TenantIdentified,
)

ALL = (
    RelationshipRequested,
    OriginalSubscriptionRecorded,
    OriginalCorrected,
    OriginalExcluded,
    InvitationAccepted,
    TenantIdentified,
    AdminAccessGranted,
    AdminAccessRemoved,
    OriginalAutoRenewDisabled,
    OriginalSubscriptionRenewed,
    OfferRetired,
    SubscriptionProvisioned,
    LicensesReassigned,
    LicensesChanged,
    LicenseReductionAccepted,
    OriginalSubscriptionExpired,
    OriginalSubscriptionCancelled,
    CreditRequested,
    CreditResolved,
    MigrationAbandoned,
    NoteAdded,
    MigrationCompleted,
)
# The library registers the explicit topics of event classes nested in an aggregate; these live
# in modules of their own (one per step, to keep modules small), so they are registered here
# with the library's own `register_topic`, the same way.
for _cls in ALL:
    if _cls is not RelationshipRequested:  # nested in Migration: registered by the library
        register_topic(_cls.TOPIC, _cls)

# Spelled out so type checkers see the re-exports: the names of `ALL`, and `ALL`.
__all__ = [
    "ALL",
    "AdminAccessGranted",
    "AdminAccessRemoved",
    "CreditRequested",
    "CreditResolved",
    "InvitationAccepted",
    "LicenseReductionAccepted",
    "LicensesChanged",
    "LicensesReassigned",
    "MigrationAbandoned",
    "MigrationCompleted",
    "NoteAdded",
    "OfferRetired",
    "OriginalAutoRenewDisabled",
    "OriginalCorrected",
    "OriginalExcluded",
    "OriginalSubscriptionCancelled",
    "OriginalSubscriptionExpired",
    "OriginalSubscriptionRecorded",
    "OriginalSubscriptionRenewed",
    "RelationshipRequested",
    "SubscriptionProvisioned",
    "TenantIdentified",
]
