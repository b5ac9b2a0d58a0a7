"""Request and response models. Events form a discriminated union on `type`, whose values are
the domain's wire names (the suffixes of the events' stable topics).

Request bodies are strict (pydantic strict mode): a JSON value must already have the field's
type, so `"licenses": "25"` or `true`, `"auto_renew": "off"` and `"multi_partner": "yes"` are
refused with 422 naming the field. JSON has no type for times, dates, UUIDs or decimals: those
arrive as strings, and only as strings (a Unix number for a time is refused too).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from api.errors import ApiError
from domain.errors import DomainError, InvalidInput

# -- wire formats: each pattern below is exactly what the server accepts ---------------------
# Business times far from today are typos, and would overflow date arithmetic in the rules: a
# date's or time's year, as written, lies between 1990 and 2200. The patterns say so, and say
# which calendar dates exist, so that every value the schema allows is accepted.
_MIN_YEAR, _MAX_YEAR = 1990, 2200
_YEAR = r"(199[0-9]|20[0-9]{2}|21[0-9]{2}|2200)"
_LEAP_YEAR = r"(199[26]|20([02468][048]|[13579][26])|21(0[48]|[2468][048]|[13579][26]))"
_MONTH_DAY = (
    r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = rf"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]"
_FRACTION = r"(\.[0-9]{1,6})?"
_ZONE = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
DATE_PATTERN = rf"^{_DATE}$"
"""`YYYY-MM-DD`, a date that exists, year 1990..2200."""
TIME_PATTERN = rf"^{_DATE}T{_CLOCK}:[0-5][0-9]{_FRACTION}{_ZONE}$"
"""RFC 3339 with a zone (`Z` or `±HH:MM`), at most 6 decimals, year 1990..2200 as written."""
QUERY_TIME_PATTERN = rf"^{_DATE}(T{_CLOCK}(:[0-5][0-9]{_FRACTION})?{_ZONE}?)?$"
"""A date, or a date and a time with or without seconds and a zone (none: UTC)."""
NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL: strings with one are refused at the door."""
# The characters Python's str.strip() removes: a text must hold something else too.
_BLANK = r"\s\x1c-\x1f\x85\ufeff"
TEXT_PATTERN = rf"^[^\x00]*[^\x00{_BLANK}][^\x00]*$"
"""Not blank (not only white space), and no NUL."""
HEADER_TEXT_PATTERN = rf"^.*[^{_BLANK}].*$"
"""A header that is not blank (its surrounding white space is not part of it)."""
TENANT_PATTERN = (
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
"""A domain name (compared in lower case)."""


def _plausible(value: date | datetime) -> date | datetime:
    if not _MIN_YEAR <= value.year <= _MAX_YEAR:
        raise ValueError(f"year must lie between {_MIN_YEAR} and {_MAX_YEAR}")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it at the door rather than in a projection.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    # The domain strips texts: one of only white space would be empty. (A byte order mark
    # counts as white space here, as in the schema's pattern, whose `\s` includes it.)
    if all(c.isspace() or c == "\ufeff" for c in value):
        raise ValueError("must not be blank")
    return value


def _json_string(
    error: str, what: str, example: str, pattern: str | None = None
) -> BeforeValidator:
    """Let only a JSON string through to a lax (string-parsing) type: pydantic's lax mode
    would also read a number as a time (Unix seconds), a date or a decimal. With `pattern`,
    only strings of that shape (pydantic alone would accept more shapes)."""
    shape = None if pattern is None else re.compile(pattern)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or (shape is not None and not shape.fullmatch(value)):
            raise PydanticCustomError(
                error,
                "must be {what} in a JSON string, e.g. {example}",
                {"what": what, "example": example},
            )
        return value

    return BeforeValidator(check)


# Above zero, at most 11 digits before the point (no leading zero) and 4 after it.
_DECIMAL = (
    r"([1-9][0-9]{0,10}(\.[0-9]{1,4})?"
    r"|0\.([1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9]))"
)

When = Annotated[
    AwareDatetime,
    Strict(False),
    _json_string(
        "time_string",
        "an ISO-8601 time with seconds and a zone, year 1990..2200",
        '"2026-11-02T09:00:00Z"',
        TIME_PATTERN,
    ),
    AfterValidator(_plausible),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": TIME_PATTERN},
    ),
]
Day = Annotated[
    date,
    Strict(False),
    _json_string(
        "date_string", "a date (YYYY-MM-DD), year 1990..2200", '"2027-01-31"', DATE_PATTERN
    ),
    AfterValidator(_plausible),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]
Guid = Annotated[UUID, Strict(False)]  # a UUID string: lax mode parses it, refuses numbers
Amount = Annotated[
    Decimal,
    Field(gt=0, max_digits=15, decimal_places=4),
    Strict(False),
    _json_string("decimal_string", "a decimal number above 0", '"120.00"', _DECIMAL),
    WithJsonSchema({"type": "string", "pattern": f"^{_DECIMAL}$", "examples": ["120.00"]}),
]
Text = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra={"pattern": TEXT_PATTERN}),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
LongText = Annotated[
    str,
    Field(min_length=1, max_length=4000, json_schema_extra={"pattern": TEXT_PATTERN}),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]


def _whole(value: Any) -> Any:
    """JSON has one number type: `25.0` is the integer 25 (as JSON Schema's `integer` says), so
    it is read as 25; `25.5`, `true` and `"25"` stay refused (strict mode)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Licenses = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_whole)]


def _region_table() -> tuple[list[str], list[str]]:
    # The table domain/regions.py reads: region names, then ISO 3166 country codes.
    data = json.loads(resources.files("domain").joinpath("data/regions.json").read_text("utf-8"))
    return list(data["regions"]), sorted(data["countries"])


_REGIONS, _COUNTRIES = _region_table()
if TYPE_CHECKING:
    RegionName = str
else:
    # A CSP region or an ISO 3166 country code, exactly as listed (the schema's enum `Region`).
    RegionName = StrEnum("Region", {value: value for value in [*_REGIONS, *_COUNTRIES]})


def _known_region(field: str) -> BeforeValidator:
    """Refuse a value outside the enum as the domain does (422 `invalid_<field>`); the domain
    would also read other spellings (`Europe`, `se`), which the schema does not list."""
    allowed = {*_REGIONS, *_COUNTRIES}

    def check(value: Any) -> Any:
        if isinstance(value, str) and value in allowed:
            return value
        echo = str(value) if len(str(value)) <= 60 else str(value)[:60] + "…"
        raise InvalidInput(
            f"invalid_{field}",
            f"{field} must be a CSP region ({', '.join(_REGIONS)}) or an ISO 3166 country "
            "code in capitals (e.g. SE)",
            field=field,
            value=echo,
        )

    return BeforeValidator(check)


def _require_type(schema: dict[str, Any]) -> None:
    """An event body's `type` picks its model: the server needs it, so the schema lists it as
    required (its default, the model's own literal, lets generated clients fill it in)."""
    if "type" in schema.get("properties", {}):
        required = schema.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")


def _present(*names: str) -> dict[str, Any]:
    """JSON Schema: each of `names` is given, and not null."""
    return {
        "required": list(names),
        "properties": {name: {"not": {"type": "null"}} for name in names},
    }


def _schema_with(**extra: Any) -> Any:
    """A model's json_schema_extra: `type` required, and `extra` (a rule across fields that
    the model's validator enforces) added."""

    def update(schema: dict[str, Any]) -> None:
        _require_type(schema)
        schema.update(extra)

    return update


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_require_type)
    occurred_at: When | None = Field(None, description="Business time; defaults to now")


Region = Annotated[
    RegionName,
    Strict(False),
    _known_region("customer_region"),
    Field(
        description="A CSP region (europe, north_america, latin_america, asia_pacific, "
        "middle_east_africa, china) or an ISO 3166 country code in capitals such as SE",
    ),
]


def _distinct(field: str) -> AfterValidator:
    """The schema's `uniqueItems`, refused with the domain's own answer (422 `invalid_<field>`,
    as domain.fields.subscription_ids), so that a body the schema forbids is refused at the
    door: in a batch, before any item is stored."""

    def check(value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise InvalidInput(f"invalid_{field}", f"{field} lists an id twice", field=field)
        return value

    return AfterValidator(check)


SubscriptionIds = Annotated[
    list[Text],
    Field(min_length=1, max_length=100, json_schema_extra={"uniqueItems": True}),
    _distinct("replaces"),
]


class RelationshipRequest(_Body):
    tenant_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            pattern=TENANT_PATTERN,
            description="The tenant's domain, e.g. contoso.com (stored in lower case)",
        ),
    ]
    tenant_guid: Guid | None = Field(
        None, description="The Microsoft Entra tenant id (Partner Center's customer id)"
    )
    customer_name: Text
    customer_region: Region
    channel: Literal["direct", "other_partner", "other_channel"]
    multi_partner: bool = False


class OriginalSubscriptionRecorded(_Body):
    type: Literal["original_subscription_recorded"] = "original_subscription_recorded"
    subscription_id: Text
    offer_id: Text
    offer_name: Text
    licenses: Licenses
    term_end: Day
    purchased_via: Literal["m365_admin_portal", "other_partner", "other_channel"]
    billing_cycle: Literal["monthly", "annual", "triennial"]
    auto_renew: bool = True


class InvitationAccepted(_Body):
    type: Literal["invitation_accepted"] = "invitation_accepted"
    accepted_by: Text
    tenant_guid: Guid | None = Field(None, description="The Entra tenant id, once known")


class SubscriptionProvisioned(_Body):
    type: Literal["subscription_provisioned"] = "subscription_provisioned"
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
    type: Literal["original_subscription_expired"] = "original_subscription_expired"


class OriginalSubscriptionCancelled(_OnSubscription):
    type: Literal["original_subscription_cancelled"] = "original_subscription_cancelled"
    cancelled_by: Literal["customer", "partner"]


class CreditRequested(_OnSubscription):
    type: Literal["credit_requested"] = "credit_requested"
    requested_by: Literal["customer", "partner"]


class CreditResolved(_OnSubscription):
    model_config = ConfigDict(
        json_schema_extra=_schema_with(
            **{
                "if": {"properties": {"outcome": {"const": "granted"}}, "required": ["outcome"]},
                "then": _present("amount", "currency"),
            }
        )
    )
    type: Literal["credit_resolved"] = "credit_resolved"
    outcome: Literal["granted", "denied"]
    amount: Amount | None = Field(
        None, description='Decimal string, e.g. "120.00"; required when granted'
    )
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = Field(
        None, description="ISO 4217 code, e.g. EUR; required when granted"
    )

    @model_validator(mode="after")
    def _granted_needs_an_amount(self) -> CreditResolved:
        if self.outcome == "granted" and (self.amount is None or self.currency is None):
            raise ValueError("a granted credit needs amount and currency")
        return self


class AdminAccessGranted(_Body):
    model_config = ConfigDict(
        json_schema_extra=_schema_with(
            **{
                "if": {"properties": {"kind": {"const": "gdap"}}, "required": ["kind"]},
                "then": _present("expires_at"),
            }
        )
    )
    type: Literal["admin_access_granted"] = "admin_access_granted"
    kind: Literal["dap", "gdap"]
    expires_at: When | None = Field(
        None, description="When the access ends; required for GDAP (at most 730 days)"
    )
    relationship_id: Text | None = Field(None, description="Partner Center's relationship id")

    @model_validator(mode="after")
    def _gdap_needs_an_end(self) -> AdminAccessGranted:
        if self.kind == "gdap" and self.expires_at is None:
            raise ValueError("GDAP access needs expires_at")
        return self


class AdminAccessRemoved(_Body):
    type: Literal["admin_access_removed"] = "admin_access_removed"
    relationship_id: Text | None = Field(None, description="The one that ended; none: all")


class OriginalSubscriptionRenewed(_OnSubscription):
    type: Literal["original_subscription_renewed"] = "original_subscription_renewed"
    term_end: Day


_CORRECTABLE = ("licenses", "term_end", "offer_id", "offer_name")


class OriginalCorrected(_OnSubscription):
    """Names at least one of licenses, term_end, offer_id, offer_name."""

    # Not (each of them absent or null). Said with `not` rather than `anyOf`, which
    # generated clients would read as four alternative models.
    model_config = ConfigDict(
        json_schema_extra=_schema_with(
            **{"not": {"properties": {name: {"type": "null"} for name in _CORRECTABLE}}}
        )
    )
    type: Literal["original_corrected"] = "original_corrected"
    reason: LongText
    licenses: Licenses | None = None
    term_end: Day | None = None
    offer_id: Text | None = None
    offer_name: Text | None = None

    @model_validator(mode="after")
    def _corrects_something(self) -> OriginalCorrected:
        if all(getattr(self, name) is None for name in _CORRECTABLE):
            raise ValueError(f"name at least one of {', '.join(_CORRECTABLE)}")
        return self


class OriginalExcluded(_OnSubscription):
    type: Literal["original_excluded"] = "original_excluded"
    reason: Literal["kept_with_other_partner", "not_migrating", "recorded_in_error"]


class TenantIdentified(_Body):
    type: Literal["tenant_identified"] = "tenant_identified"
    tenant_guid: Guid = Field(description="The customer's Microsoft Entra tenant id")


class LicenseReductionAccepted(_Body):
    type: Literal["license_reduction_accepted"] = "license_reduction_accepted"
    offer_id: Text
    licenses: Licenses
    reason: LongText


class OriginalAutoRenewDisabled(_OnSubscription):
    type: Literal["original_auto_renew_disabled"] = "original_auto_renew_disabled"


class NoteAdded(_Body):
    type: Literal["note_added"] = "note_added"
    text: LongText


class OfferRetired(_OnSubscription):
    type: Literal["offer_retired"] = "offer_retired"


class LicensesReassigned(_OnSubscription):
    type: Literal["licenses_reassigned"] = "licenses_reassigned"


class LicensesChanged(_OnSubscription):
    type: Literal["licenses_changed"] = "licenses_changed"
    licenses: Licenses


class MigrationAbandoned(_Body):
    type: Literal["migration_abandoned"] = "migration_abandoned"
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
    | LicenseReductionAccepted
    | TenantIdentified,
    Field(discriminator="type"),
]

MAX_BATCH = 100
"""Events in one batch: the array form of POST .../events, and POST /v1/events:batch."""

EventBatch = Annotated[list[EventBody], Field(min_length=1, max_length=MAX_BATCH)]


def _form(value: Any) -> str:
    return "batch" if isinstance(value, list) else "event"


# The documented body of POST /v1/migrations/{id}/events: one event (an object), or an array of
# them (`oneOf`). The route reads it with `read_events`, not with this union, which would put
# its member's tag in every error's `loc`: a single event's 422s stay as they always were.
_EventOrBatch = Annotated[
    Annotated[EventBody, Tag("event")] | Annotated[EventBatch, Tag("batch")],
    Discriminator(_form),
]
EventsIn = Annotated[Any, PlainValidator(lambda value: value, json_schema_input_type=_EventOrBatch)]


class BatchItem(BaseModel):
    """One item of POST /v1/events:batch: an event for one migration."""

    model_config = ConfigDict(extra="forbid", strict=True)
    migration_id: Guid = Field(description="The migration's id")
    event: EventBody
    idempotency_key: Text | None = Field(
        None,
        description="As the Idempotency-Key header of POST /v1/migrations/{id}/events: a retry "
        "with the same key and item gets the first result (`replayed`)",
    )


BatchRequest = Annotated[list[BatchItem], Field(min_length=1, max_length=MAX_BATCH)]
# The documented body of POST /v1/events:batch, read by `read_items`.
BatchIn = Annotated[Any, PlainValidator(lambda value: value, json_schema_input_type=BatchRequest)]

_ONE_EVENT: TypeAdapter[Any] = TypeAdapter(EventBody)
_ONE_ITEM: TypeAdapter[BatchItem] = TypeAdapter(BatchItem)
_BATCH: TypeAdapter[list[Any]] = TypeAdapter(
    Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH)]
)


def read_events(value: Any) -> Any:
    """A body of EventsIn: the event's model, or (for an array) the list of them."""
    if isinstance(value, list):
        return _read_each(value, _ONE_EVENT)
    return _read(_ONE_EVENT, value, ())


def read_items(value: Any) -> list[BatchItem]:
    """A body of BatchIn: the items."""
    return _read_each(value, _ONE_ITEM)


def _read_each(value: Any, adapter: TypeAdapter[Any]) -> list[Any]:
    """An array of 1 to MAX_BATCH values of `adapter`, read one by one: a malformed one is a
    422 validation_error whose `loc` names its index, a refusal with the domain's code (a wire
    check such as `_distinct`) names it in `details.index`."""
    _read(_BATCH, value, ())
    read: list[Any] = []
    errors: list[Any] = []
    for index, item in enumerate(value):
        try:
            read.append(_read(adapter, item, (index,)))
        except RequestValidationError as invalid:
            errors.extend(invalid.errors())
        except DomainError as refusal:
            raise refusal.at_index(index) from None
    if errors:
        raise RequestValidationError(errors, body=value)
    return read


def _read(adapter: TypeAdapter[Any], value: Any, where: tuple[int, ...]) -> Any:
    """`value` read as FastAPI reads a body (fastapi._compat.v2.ModelField.validate), refused as
    it refuses one: 422 validation_error, each `loc` from "body"."""
    try:
        return adapter.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *where, *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=value) from None


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
    """What a write stored: the migration's id, its version after the write, the events (each
    named by its `version`), and the migration's state after them."""

    id: str
    version: int
    events: list[StoredEvent]
    # Never null: absent or a state (SkipJsonSchema keeps `null` out of the schema).
    state: MigrationState | SkipJsonSchema[None] = Field(
        None,
        description="Always there, except in answers to `Prefer: return=minimal` on POST "
        "/v1/migrations/{id}/events, which leave it out",
    )


class StoredItem(BaseModel):
    """An item of a batch that was stored (now, or by an earlier request with its key)."""

    index: int = Field(description="Its position in the request, from 0")
    status: Literal[201]
    replayed: bool = Field(description="Stored by an earlier request with this idempotency key")
    id: str
    version: int = Field(description="The migration's version after it")
    events: list[StoredEvent] = Field(description="The events stored (incl. migration_completed)")


class RefusedItem(BaseModel):
    """An item of a batch that was refused (nothing of it stored), in the error shape."""

    index: int = Field(description="Its position in the request, from 0")
    status: int = Field(description="The status a single request would have been answered with")
    error: str
    message: str
    details: dict[str, Any]


class BatchResults(BaseModel):
    """One result per item, in the order of the request."""

    items: list[StoredItem | RefusedItem]


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


# -- the ledger --------------------------------------------------------------------------
class SignedHead(_Open):
    """A signed tree head: save it, and verify the store against it later."""

    tree_size: int
    root_hash: str
    timestamp: str
    key_id: str
    signature: str


class HeadPage(BaseModel):
    items: list[SignedHead]
    next_before: int | None = Field(description="Pass as `before` for the next page")


class PublicKey(BaseModel):
    key_id: str
    public_key_pem: str


class ProvenLeaf(BaseModel):
    """The stored event at a position, as the ledger hashed it."""

    position: int
    originator_id: str
    version: int
    topic: str
    state: str = Field(description="The stored event's bytes, base64")


class InclusionProof(BaseModel):
    tree_size: int
    leaf_index: int
    leaf: ProvenLeaf
    audit_path: list[str] = Field(description="Hex hashes, leaf to root")
    root_hash: str


class ConsistencyProof(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="Hex hashes")


# -- Partner Center ingest ---------------------------------------------------------------
class NotificationRecord(_Open):
    """One logged Partner Center notification and what became of it."""

    id: str
    partner_id: str
    event_name: str
    resource_uri: str
    resource_name: str
    audit_uri: str
    resource_change_utc: str
    received_at: str
    customer_guid: str | None
    status: str
    migration_id: str | None
    migration_version: int | None
    refusal: str | None
    matched_by: str | None


class IngestOutcome(BaseModel):
    status: str = Field(
        description="applied, unmatched, rejected, needs_reconciliation, or duplicate"
    )
    notification_id: str
    migration_id: str | None
    migration_version: int | None
    refusal: str | None
    first: NotificationRecord | None = Field(
        description="For a duplicate: the notification as first received"
    )


class NotificationLog(BaseModel):
    items: list[NotificationRecord]


# -- the dashboard -----------------------------------------------------------------------
class StageCounts(BaseModel):
    """Migrations in each stage (domain.vocabulary.Stage), every stage present."""

    invited: int = 0
    accepted: int = 0
    provisioning: int = 0
    provisioned: int = 0
    completed: int = 0
    abandoned: int = 0


class RiskCounts(BaseModel):
    """Migrations carrying each risk flag at the time of the request
    (domain.vocabulary.Risk), every flag present, 0 when none carries it."""

    license_shortfall: int = 0
    cancelled_before_replacement: int = 0
    grace_period: int = 0
    access_lost: int = 0
    data_loss: int = 0
    early_cancellation: int = 0
    credit_not_requested: int = 0
    reassignment_pending: int = 0
    auto_renew_on: int = 0
    expiring_unreplaced: int = 0
    admin_access_expiring: int = 0
    double_billing: int = 0


class LicenseTotals(BaseModel):
    original: int = Field(description="Licenses of the originals recorded")
    provisioned: int = Field(description="Licenses of the CSP subscriptions provisioned")


class EndingUnreplaced(BaseModel):
    """Originals still active and not yet replaced, in open migrations, whose term ends
    between today and the given number of days from today (both included): the work that
    is due. Keyed by the number of days."""

    model_config = ConfigDict(populate_by_name=True)
    within_7_days: int = Field(0, alias="7", description="Term ends within 7 days")
    within_30_days: int = Field(0, alias="30", description="Term ends within 30 days")
    within_90_days: int = Field(0, alias="90", description="Term ends within 90 days")


class CreditCounts(BaseModel):
    requested: int = Field(description="Originals a credit was asked for (resolved or not)")
    granted: int
    denied: int
    granted_amount: dict[str, str] = Field(
        description="Total granted per currency (ISO 4217 code), as a decimal string with at "
        'least two decimals, e.g. {"EUR": "120.00"}'
    )


class SummaryCounts(BaseModel):
    """One scope's counts: all migrations of the scope, open and closed."""

    migrations: int = Field(description="Migrations in the scope")
    stages: StageCounts
    risks: RiskCounts
    licenses: LicenseTotals
    ending_unreplaced: EndingUnreplaced
    credits: CreditCounts


_SUMMARY_EXAMPLE: dict[str, Any] = {
    "migrations": 2,
    "stages": {
        "invited": 0,
        "accepted": 1,
        "provisioning": 0,
        "provisioned": 0,
        "completed": 1,
        "abandoned": 0,
    },
    "risks": {
        "license_shortfall": 0,
        "cancelled_before_replacement": 0,
        "grace_period": 0,
        "access_lost": 0,
        "data_loss": 0,
        "early_cancellation": 1,
        "credit_not_requested": 0,
        "reassignment_pending": 0,
        "auto_renew_on": 1,
        "expiring_unreplaced": 1,
        "admin_access_expiring": 0,
        "double_billing": 0,
    },
    "licenses": {"original": 50, "provisioned": 25},
    "ending_unreplaced": {"7": 0, "30": 1, "90": 1},
    "credits": {"requested": 1, "granted": 1, "denied": 0, "granted_amount": {"EUR": "120.00"}},
}


class DashboardSummary(BaseModel):
    """Counts over the migrations the key may see, at the time of the request.

    `overall` sums `partners`. `partners` holds one entry per partner id that has at least one
    migration: all partners for an auditor key (or the one named by `partner_id`), the key's
    own partner for a partner key. Every stage and every risk flag is present, with 0 when no
    migration has it; `ending_unreplaced` is keyed by days ("7", "30", "90")."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"overall": _SUMMARY_EXAMPLE, "partners": {"fabrikam": _SUMMARY_EXAMPLE}}]
        }
    )
    overall: SummaryCounts = Field(description="The sum over `partners`")
    partners: dict[str, SummaryCounts] = Field(description="By partner id")


# `*`, or a version: bare (as the ETag is sent), quoted, or as a weak tag.
IF_MATCH_PATTERN = r'^(\*|[0-9]{1,18}|"[0-9]{1,18}"|W/"[0-9]{1,18}")$'
_IF_MATCH = re.compile(IF_MATCH_PATTERN)


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header names (None: none, or `*`); 422 `invalid_if_match` for
    another shape."""
    if if_match is None:
        return None
    value = if_match.strip()
    if not _IF_MATCH.fullmatch(value):
        raise ApiError(
            422,
            "invalid_if_match",
            'If-Match must be a version number (3, "3" or W/"3") or *',
            value=value[:64],
        )
    if value == "*":
        return None
    return int(value.removeprefix("W/").strip('"'))
