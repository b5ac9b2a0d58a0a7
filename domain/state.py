"""The derived state of one migration: a pure function of its events.

`replay(events)` folds events into a fresh `MigrationState`; the aggregate, the projections and
time travel all use the same fold (each event's `evolve`), so the rules live in one place.
State round-trips through plain JSON-able dicts so a read model can keep it between events.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from domain.vocabulary import OriginalStatus, Stage


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
    auto_renew: bool = True
    offer_retired: bool = False
    status: str = OriginalStatus.ACTIVE.value
    ended_at: datetime | None = None
    cancelled_by: str | None = None
    cancelled_before_replacement: bool = False
    early_cancellation: bool = False
    replaced_by: str | None = None
    credit: str | None = None  # None, "requested", "granted" or "denied"
    credit_requested_by: str | None = None
    credit_amount: Decimal | None = None
    credit_currency: str | None = None

    @property
    def ended(self) -> bool:
        return self.status != OriginalStatus.ACTIVE

    def __deepcopy__(self, memo: dict) -> Original:
        return copy.copy(self)  # every field is immutable


@dataclass
class Replacement:
    """A CSP subscription provisioned to replace one original."""

    subscription_id: str
    replaces: str
    offer_id: str
    offer_name: str
    licenses: int
    purchased_at: datetime
    reassignment_pending: bool = False
    late_reduction: bool = False

    def __deepcopy__(self, memo: dict) -> Replacement:
        return copy.copy(self)  # every field is immutable


@dataclass
class AdminAccess:
    kind: str
    granted_at: datetime
    expires_at: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        return self.expires_at is None or at < self.expires_at

    def __deepcopy__(self, memo: dict) -> AdminAccess:
        return copy.copy(self)  # every field is immutable


@dataclass
class MigrationState:
    partner_id: str = ""
    partner_region: str = ""
    tenant_id: str = ""
    customer_name: str = ""
    customer_region: str = ""
    channel: str = ""
    multi_partner: bool = False
    requested_at: datetime | None = None
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    admin_access: AdminAccess | None = None
    originals: dict[str, Original] = field(default_factory=dict)
    replacements: dict[str, Replacement] = field(default_factory=dict)
    closed: str | None = None  # None, "completed" or "abandoned"
    closed_at: datetime | None = None
    abandon_reason: str | None = None
    notes: int = 0
    credits_granted: dict[str, Decimal] = field(default_factory=dict)  # per currency

    def __deepcopy__(self, memo: dict) -> MigrationState:
        """The aggregate cache hands out a deep copy per command: copy only the mutable
        containers (the generic deepcopy walked every field and cost most of a command)."""
        new = copy.copy(self)
        new.admin_access = copy.copy(self.admin_access)
        new.originals = {k: copy.copy(v) for k, v in self.originals.items()}
        new.replacements = {k: copy.copy(v) for k, v in self.replacements.items()}
        new.credits_granted = dict(self.credits_granted)
        return new

    # -- derived views -------------------------------------------------------------
    def replacement_of(self, original: Original) -> Replacement | None:
        if original.replaced_by is None:
            return None
        return self.replacements[original.replaced_by]

    @property
    def stage(self) -> str:
        if self.closed:
            return self.closed
        if self.accepted_at is None:
            return Stage.INVITED.value
        if not self.replacements:
            return Stage.ACCEPTED.value
        if self.originals and all(o.replaced_by for o in self.originals.values()):
            return Stage.PROVISIONED.value
        return Stage.PROVISIONING.value

    @property
    def original_licenses(self) -> int:
        return sum(o.licenses for o in self.originals.values())

    @property
    def provisioned_licenses(self) -> int:
        return sum(r.licenses for r in self.replacements.values())

    @property
    def next_term_end(self) -> date | None:
        """The nearest term end among originals still active and not yet replaced."""
        ends = [
            o.term_end for o in self.originals.values() if not o.ended and o.replaced_by is None
        ]
        return min(ends, default=None)

    def has_admin_access(self, at: datetime) -> bool:
        return self.admin_access is not None and self.admin_access.active_at(at)

    @property
    def is_complete(self) -> bool:
        """Step 4 of the seed: every original ended, each replaced with at least as many
        licenses, and no license reassignment outstanding."""
        if not self.originals:
            return False
        for original in self.originals.values():
            replacement = self.replacement_of(original)
            if not original.ended or replacement is None:
                return False
            if replacement.licenses < original.licenses or replacement.reassignment_pending:
                return False
        return True

    # -- serialisation for read models ---------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _encode(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationState:
        data = dict(data)
        access = data.pop("admin_access")
        originals = data.pop("originals")
        replacements = data.pop("replacements")
        credits = data.pop("credits_granted")
        state = cls(**_decode(cls, data))
        state.admin_access = AdminAccess(**_decode(AdminAccess, access)) if access else None
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
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


_PARSERS = {
    "date": date.fromisoformat,
    "datetime | None": lambda v: None if v is None else datetime.fromisoformat(v),
    "datetime": datetime.fromisoformat,
    "Decimal | None": lambda v: None if v is None else Decimal(v),
}


def _decode(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    types = {f.name: f.type for f in fields(cls)}
    return {k: _PARSERS.get(str(types[k]), lambda v: v)(v) for k, v in data.items()}
