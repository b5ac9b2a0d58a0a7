"""Request and response models. Events form a discriminated union on `type`, whose values are
the domain's wire names (the suffixes of the events' stable topics)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Business times far from today are typos, and would overflow date arithmetic in the rules.
_MIN_YEAR, _MAX_YEAR = 1990, 2200


def _plausible(value: date | datetime) -> date | datetime:
    if not _MIN_YEAR <= value.year <= _MAX_YEAR:
        raise ValueError(f"year must lie between {_MIN_YEAR} and {_MAX_YEAR}")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it at the door rather than in a projection.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


When = Annotated[AwareDatetime, AfterValidator(_plausible)]
Day = Annotated[date, AfterValidator(_plausible)]
Text = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
LongText = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_no_nul)]
Licenses = Annotated[int, Field(ge=1, le=1_000_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occurred_at: When | None = Field(None, description="Business time; defaults to now")


Region = Annotated[
    str,
    Field(
        min_length=2,
        max_length=40,
        description="A CSP region (europe, north_america, latin_america, asia_pacific, "
        "middle_east_africa, china) or an ISO 3166 country code such as SE",
    ),
]
SubscriptionIds = Annotated[list[Text], Field(min_length=1, max_length=100)]


class RelationshipRequest(_Body):
    tenant_id: Annotated[Text, Field(description="The tenant's domain, e.g. contoso.com")]
    tenant_guid: UUID | None = Field(
        None, description="The Microsoft Entra tenant id (Partner Center's customer id)"
    )
    customer_name: Text
    customer_region: Region
    channel: Literal["direct", "other_partner", "other_channel"]
    multi_partner: bool = False


class OriginalSubscriptionRecorded(_Body):
    type: Literal["original_subscription_recorded"]
    subscription_id: Text
    offer_id: Text
    offer_name: Text
    licenses: Licenses
    term_end: Day
    purchased_via: Literal["m365_admin_portal", "other_partner", "other_channel"]
    billing_cycle: Literal["monthly", "annual", "triennial"]
    auto_renew: bool = True


class InvitationAccepted(_Body):
    type: Literal["invitation_accepted"]
    accepted_by: Text
    tenant_guid: UUID | None = Field(None, description="The Entra tenant id, once known")


class SubscriptionProvisioned(_Body):
    type: Literal["subscription_provisioned"]
    subscription_id: Text
    replaces: Text | SubscriptionIds = Field(
        description="The original (or list of originals of one offer) this replaces"
    )
    offer_id: Text
    offer_name: Text
    licenses: Licenses


class _OnSubscription(_Body):
    subscription_id: Text


class OriginalSubscriptionExpired(_OnSubscription):
    type: Literal["original_subscription_expired"]


class OriginalSubscriptionCancelled(_OnSubscription):
    type: Literal["original_subscription_cancelled"]
    cancelled_by: Literal["customer", "partner"]


class CreditRequested(_OnSubscription):
    type: Literal["credit_requested"]
    requested_by: Literal["customer", "partner"]


class CreditResolved(_OnSubscription):
    type: Literal["credit_resolved"]
    outcome: Literal["granted", "denied"]
    amount: Annotated[Decimal, Field(gt=0, max_digits=15, decimal_places=4)] | None = Field(
        None, description='Decimal string, e.g. "120.00"; required when granted'
    )
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = None


class AdminAccessGranted(_Body):
    type: Literal["admin_access_granted"]
    kind: Literal["dap", "gdap"]
    expires_at: When | None = None
    relationship_id: Text | None = Field(None, description="Partner Center's relationship id")


class AdminAccessRemoved(_Body):
    type: Literal["admin_access_removed"]
    relationship_id: Text | None = Field(None, description="The one that ended; none: all")


class OriginalSubscriptionRenewed(_OnSubscription):
    type: Literal["original_subscription_renewed"]
    term_end: Day


class OriginalCorrected(_OnSubscription):
    type: Literal["original_corrected"]
    reason: LongText
    licenses: Licenses | None = None
    term_end: Day | None = None
    offer_id: Text | None = None
    offer_name: Text | None = None


class OriginalExcluded(_OnSubscription):
    type: Literal["original_excluded"]
    reason: Literal["kept_with_other_partner", "not_migrating", "recorded_in_error"]


class LicenseReductionAccepted(_Body):
    type: Literal["license_reduction_accepted"]
    offer_id: Text
    licenses: Licenses
    reason: LongText


class OriginalAutoRenewDisabled(_OnSubscription):
    type: Literal["original_auto_renew_disabled"]


class NoteAdded(_Body):
    type: Literal["note_added"]
    text: LongText


class OfferRetired(_OnSubscription):
    type: Literal["offer_retired"]


class LicensesReassigned(_OnSubscription):
    type: Literal["licenses_reassigned"]


class LicensesChanged(_OnSubscription):
    type: Literal["licenses_changed"]
    licenses: Licenses


class MigrationAbandoned(_Body):
    type: Literal["migration_abandoned"]
    reason: LongText


EventBody = Annotated[
    OriginalSubscriptionRecorded
    | InvitationAccepted
    | SubscriptionProvisioned
    | OriginalSubscriptionExpired
    | OriginalSubscriptionCancelled
    | CreditRequested
    | CreditResolved
    | AdminAccessGranted
    | AdminAccessRemoved
    | OriginalAutoRenewDisabled
    | NoteAdded
    | OfferRetired
    | LicensesReassigned
    | LicensesChanged
    | MigrationAbandoned
    | OriginalSubscriptionRenewed
    | OriginalCorrected
    | OriginalExcluded
    | LicenseReductionAccepted,
    Field(discriminator="type"),
]


# -- responses ---------------------------------------------------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OriginalOut(_Open):
    subscription_id: str
    status: str
    replaced_by: list[str]
    term_end: str


class AdminAccessOut(_Open):
    relationship_id: str
    kind: str
    expires_at: str | None


class MigrationState(_Open):
    """domain.view.describe(): the one shape of a migration's state."""

    id: str
    partner_id: str
    tenant_id: str
    customer_name: str
    stage: str
    version: int
    risks: list[str]
    licenses: dict[str, int]
    originals: list[OriginalOut]
    admin_access: list[AdminAccessOut]
    deadlines: list[dict[str, Any]]


class StoredEvent(_Open):
    type: str
    version: int
    recorded_at: str
    occurred_at: str
    principal: str
    role: str
    correlation_id: str


class Recorded(BaseModel):
    id: str
    version: int
    events: list[StoredEvent]
    state: MigrationState


class MigrationPage(BaseModel):
    items: list[MigrationState]
    next_cursor: str | None


class AuditPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class Verification(_Open):
    ok: bool


class Health(_Open):
    status: str
