"""The derived state of one migration: a pure function of its events.

`replay(events)` folds events into a fresh `MigrationState`; the aggregate, the projections and
time travel all use the same fold (each event's `evolve`), so the rules live in one place.
State round-trips through plain JSON-able dicts so a read model (and a snapshot) can keep it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Protocol

from domain.vocabulary import OriginalStatus, Stage

# The shape of `to_dict()`. Format 1 (before the domain rules issue) kept less than the events
# say (one admin access slot, no business time of progress): it is not upgraded but refused
# (`StaleState`), and the state is rebuilt from the events instead.
STATE_FORMAT = 2


class StaleState(ValueError):
    """A stored state (a snapshot's) written in another format: replay the events instead."""


@dataclass
class Original:
    """A subscription the customer holds today, outside CSP."""

    subscription_id: str
    offer_id: str
    offer_name: str
    licenses: int
    term_end: date
    purchased_via: str
    billing_cycle: str
    family: str  # the offer family it is compared in (decided when recorded)
    auto_renew: bool = True
    offer_retired: bool = False
    status: str = OriginalStatus.ACTIVE.value
    ended_at: datetime | None = None
    cancelled_by: str | None = None
    excluded: str | None = None  # the reason it was taken out of the migration's scope
    replaced_by: tuple[str, ...] = ()  # the replacements that list it in `replaces`
    credit: str | None = None  # None, "requested", "granted" or "denied"
    credit_requested_by: str | None = None
    credit_requested_at: datetime | None = None
    credit_amount: Decimal | None = None
    credit_currency: str | None = None

    @property
    def ended(self) -> bool:
        return self.status != OriginalStatus.ACTIVE

    @property
    def in_scope(self) -> bool:
        return self.excluded is None

    def __deepcopy__(self, memo: dict[int, Any]) -> Original:
        return copy.copy(self)  # every field is immutable


@dataclass
class Replacement:
    """A CSP subscription provisioned to replace one or more originals of one offer family."""

    subscription_id: str
    replaces: tuple[str, ...]
    offer_id: str
    offer_name: str
    licenses: int
    purchased_at: datetime
    family: str
    reassignment_pending: bool = False
    # (business time, seats) of each purchase or increase still held: new-commerce seats can
    # be reduced only within 7 days of being added.
    seat_lots: tuple[tuple[datetime, int], ...] = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> Replacement:
        return copy.copy(self)  # every field is immutable


@dataclass
class AdminRelationship:
    """One DAP or GDAP relationship between the partner and the customer's tenant."""

    relationship_id: str
    kind: str
    granted_at: datetime
    expires_at: datetime | None = None
    removed_at: datetime | None = None

    def live_at(self, at: datetime) -> bool:
        return (
            self.granted_at <= at
            and (self.expires_at is None or at < self.expires_at)
            and (self.removed_at is None or at < self.removed_at)
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> AdminRelationship:
        return copy.copy(self)  # every field is immutable


@dataclass
class MigrationState:
    partner_id: str = ""
    partner_region: str = ""
    tenant_id: str = ""
    tenant_guid: str | None = None
    customer_name: str = ""
    customer_region: str = ""
    customer_country: str | None = None
    channel: str = ""
    multi_partner: bool = False
    requested_at: datetime | None = None
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    admin_access: dict[str, AdminRelationship] = field(default_factory=dict)
    originals: dict[str, Original] = field(default_factory=dict)
    replacements: dict[str, Replacement] = field(default_factory=dict)
    # offer family -> the total the account admin accepted instead of the originals' total
    accepted_totals: dict[str, int] = field(default_factory=dict)
    closed: str | None = None  # None, "completed" or "abandoned"
    closed_at: datetime | None = None
    abandon_reason: str | None = None
    # The latest business time of a fact that moved the migration on (completion is dated here)
    progress_at: datetime | None = None
    notes: int = 0
    credits_granted: dict[str, Decimal] = field(default_factory=dict)  # per currency

    def __deepcopy__(self, memo: dict[int, Any]) -> MigrationState:
        """The aggregate cache hands out a deep copy per command: copy only the mutable
        containers (the generic deepcopy walked every field and cost most of a command)."""
        new = copy.copy(self)
        new.admin_access = {k: copy.copy(v) for k, v in self.admin_access.items()}
        new.originals = {k: copy.copy(v) for k, v in self.originals.items()}
        new.replacements = {k: copy.copy(v) for k, v in self.replacements.items()}
        new.accepted_totals = dict(self.accepted_totals)
        new.credits_granted = dict(self.credits_granted)
        return new

    def progressed(self, at: datetime) -> None:
        if self.progress_at is None or at > self.progress_at:
            self.progress_at = at

    # -- derived views -------------------------------------------------------------
    @property
    def in_scope(self) -> list[Original]:
        """The originals this migration moves (not those kept with another partner)."""
        return [o for o in self.originals.values() if o.excluded is None]

    @property
    def stage(self) -> str:
        if self.closed:
            return self.closed
        if self.accepted_at is None:
            return Stage.INVITED.value
        if not self.replacements:
            return Stage.ACCEPTED.value
        scope = self.in_scope
        if scope and all(o.replaced_by for o in scope):
            return Stage.PROVISIONED.value
        return Stage.PROVISIONING.value

    @property
    def original_licenses(self) -> int:
        return sum(o.licenses for o in self.in_scope)

    @property
    def provisioned_licenses(self) -> int:
        return sum(r.licenses for r in self.replacements.values())

    def totals(self) -> dict[str, tuple[int, int, int]]:
        """Per offer family of the originals in scope: (originals' licenses, provisioned
        licenses, the licenses required: the originals' total or the accepted reduction)."""
        out: dict[str, list[int]] = {}
        for o in self.in_scope:
            out.setdefault(o.family, [0, 0])[0] += o.licenses
        for r in self.replacements.values():
            if r.family in out:
                out[r.family][1] += r.licenses
        return {
            family: (orig, prov, min(self.accepted_totals.get(family, orig), orig))
            for family, (orig, prov) in out.items()
        }

    def shortfalls(self) -> dict[str, int]:
        """Families fully covered by replacements whose provisioned total is below the
        required total: family -> missing licenses. Partial provisioning is no shortfall."""
        covered = {o.family for o in self.in_scope if o.replaced_by}
        uncovered = {o.family for o in self.in_scope if not o.replaced_by}
        return {
            family: required - provisioned
            for family, (_, provisioned, required) in self.totals().items()
            if family in covered and family not in uncovered and provisioned < required
        }

    @property
    def next_term_end(self) -> date | None:
        """The nearest term end among originals in scope, still active and not yet replaced."""
        ends = [o.term_end for o in self.in_scope if not o.ended and not o.replaced_by]
        return min(ends, default=None)

    def has_admin_access(self, at: datetime) -> bool:
        return any(r.live_at(at) for r in self.admin_access.values())

    @property
    def admin_access_end(self) -> datetime | None:
        """When the last admin relationship not removed ends (None: none, or one never ends)."""
        kept = [r for r in self.admin_access.values() if r.removed_at is None]
        if not kept or any(r.expires_at is None for r in kept):
            return None
        return max(r.expires_at for r in kept if r.expires_at is not None)

    @property
    def is_complete(self) -> bool:
        """Step 4 of the seed: every original in scope ended and replaced, every offer family
        at its required total, and no license reassignment outstanding."""
        scope = self.in_scope
        if not scope:
            return False
        if any(not o.ended or not o.replaced_by for o in scope):
            return False
        if any(r.reassignment_pending for r in self.replacements.values()):
            return False
        return all(prov >= required for _, prov, required in self.totals().values())

    # -- serialisation for read models and snapshots --------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _encode(asdict(self))
        data["format"] = STATE_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationState:
        data = dict(data)
        if data.pop("format", 1) != STATE_FORMAT:
            raise StaleState(f"state format {data.get('format', 1)} is not {STATE_FORMAT}")
        access = data.pop("admin_access")
        originals = data.pop("originals")
        replacements = data.pop("replacements")
        credits = data.pop("credits_granted")
        state = cls(**_decode(cls, data))
        state.admin_access = {
            k: AdminRelationship(**_decode(AdminRelationship, v)) for k, v in access.items()
        }
        state.originals = {k: Original(**_decode(Original, v)) for k, v in originals.items()}
        state.replacements = {
            k: Replacement(**_decode(Replacement, v)) for k, v in replacements.items()
        }
        state.credits_granted = {k: Decimal(v) for k, v in credits.items()}
        return state


class Evolves(Protocol):
    def evolve(self, state: MigrationState) -> None: ...


def replay(events: Iterable[Evolves]) -> MigrationState:
    """Fold events into a fresh state: the one definition of derived state."""
    state = MigrationState()
    for event in events:
        event.evolve(state)
    return state


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _optional(parse: Any) -> Any:
    return lambda v: None if v is None else parse(v)


_PARSERS = {
    "date": date.fromisoformat,
    "datetime": datetime.fromisoformat,
    "datetime | None": _optional(datetime.fromisoformat),
    "Decimal | None": _optional(Decimal),
    "tuple[str, ...]": tuple,
    "tuple[tuple[datetime, int], ...]": lambda v: tuple(
        (datetime.fromisoformat(t), n) for t, n in v
    ),
}


def _same(value: Any) -> Any:
    return value


@cache
def _parsers(cls: type) -> dict[str, Any]:
    """Each field's parser (`_same` for plain JSON values), worked out once per class: reading
    states is on the projector's path, once per migration in each batch."""
    return {f.name: _PARSERS.get(str(f.type), _same) for f in fields(cls)}


def _decode(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    parsers = _parsers(cls)
    return {k: parsers[k](v) for k, v in data.items() if k in parsers}
