"""Partner Center webhook notifications: what each one means for a migration, and the ingest log.

A notification only says that something changed for a customer (`ResourceUri` names it by its
Microsoft Entra tenant id, which Partner Center calls the customer id). Three kinds map to
migration events; every other kind is kept as received, `needs_reconciliation`, and no state
change is guessed. Each notification is one `IngestedNotification` aggregate, keyed by
(partner, EventName, ResourceUri, ResourceChangeUtcDate), so a retry stores nothing new and two
concurrent deliveries collide in the store itself. Nothing is ever dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.commands import Command
from domain.errors import Conflict

_NS = uuid5(NAMESPACE_URL, "urn:csp-tracker:partner-center")
PRINCIPAL = "partner-center"
# Partner Center does not say how long an approved GDAP relationship lasts: the longest it may
# (730 days) is recorded, and a later removal or expiry notification ends it.
GDAP_LONGEST = timedelta(days=730)

_CUSTOMER = re.compile(r"/customers/([0-9a-fA-F-]{36})(?:/|$)")
_RELATIONSHIP = re.compile(
    r"(?:adminrelationships|relationships|delegatedAdminRelationships)/([^/?#]+)", re.I
)


# A signed body that is not a notification is kept too, keyed by its hash.
UNREADABLE = "(unreadable body)"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Refusals that mean the fact is already recorded (e.g. `-activated` after `-approved`).
ALREADY_RECORDED = frozenset({"relationship_exists", "already_accepted"})


class Status(StrEnum):
    APPLIED = "applied"
    # A retry is answered `duplicate` and not stored again; a new notification of a fact
    # the migration already holds is stored `duplicate`, with the domain's code.
    DUPLICATE = "duplicate"
    UNMATCHED = "unmatched"
    REJECTED = "rejected"
    NEEDS_RECONCILIATION = "needs_reconciliation"


ACCEPTED = {"reseller-relationship-accepted-by-customer"}
GRANTED = {
    "dap-admin-relationship-approved": "dap",
    "granular-admin-relationship-approved": "gdap",
    "granular-admin-relationship-activated": "gdap",
}
REMOVED = {
    "dap-admin-relationship-terminated",
    "dap-admin-relationship-terminated-by-microsoft",
    "granular-admin-relationship-terminated",
    "granular-admin-relationship-expired",
}


def customer_guid(resource_uri: str) -> str | None:
    match = _CUSTOMER.search(resource_uri)
    if match is None:
        return None
    try:
        return str(UUID(match.group(1)))
    except ValueError:  # 36 characters of hex digits and dashes, but not a GUID
        return None


def relationship_id(resource_uri: str) -> str | None:
    match = _RELATIONSHIP.search(resource_uri)
    return None if match is None else match.group(1)


def command_for(event_name: str, resource_uri: str, at: datetime) -> Command | None:
    """The migration command a notification stands for (None: it maps to none)."""
    name = event_name.strip().lower()
    if name in ACCEPTED:
        return Command.of("invitation_accepted", accepted_by=PRINCIPAL)
    if name in GRANTED:
        kind = GRANTED[name]
        fields: dict[str, Any] = {"kind": kind}
        rel = relationship_id(resource_uri)
        if rel is not None:
            fields["relationship_id"] = rel
        if kind == "gdap":
            fields["expires_at"] = at + GDAP_LONGEST
        return Command("admin_access_granted", fields)
    if name in REMOVED:
        return Command.of("admin_access_removed", relationship_id=relationship_id(resource_uri))
    return None


@dataclass(frozen=True)
class Received:
    """A notification as Partner Center sent it (the fields of its body)."""

    event_name: str
    resource_uri: str
    resource_name: str
    audit_uri: str
    resource_change_utc: datetime


class IngestedNotification(Aggregate):
    """One notification received, and what became of it."""

    TOPIC = "csp_tracker.ingest:IngestedNotification"

    class Event(Aggregate.Event):
        pass

    class Logged(Event, Aggregate.Created):
        TOPIC = "csp_tracker.ingest:logged"
        partner_id: str
        event_name: str
        resource_uri: str
        resource_name: str
        audit_uri: str
        resource_change_utc: datetime
        customer_guid: str | None
        body_sha256: str
        status: str
        migration_id: UUID | None
        migration_version: int | None
        refusal: str | None

    Created = Logged

    class Matched(Event):
        """An operator linked an unmatched notification to a migration."""

        TOPIC = "csp_tracker.ingest:matched"
        principal: str
        status: str
        migration_id: UUID
        migration_version: int | None
        refusal: str | None

        def apply(self, aggregate: IngestedNotification) -> None:
            aggregate.status = self.status
            aggregate.migration_id = self.migration_id
            aggregate.migration_version = self.migration_version
            aggregate.refusal = self.refusal
            aggregate.matched_by = self.principal

    def __init__(
        self,
        partner_id: str,
        event_name: str,
        resource_uri: str,
        resource_name: str,
        audit_uri: str,
        resource_change_utc: datetime,
        customer_guid: str | None,
        body_sha256: str,
        status: str,
        migration_id: UUID | None,
        migration_version: int | None,
        refusal: str | None,
    ) -> None:
        self.partner_id = partner_id
        self.event_name = event_name
        self.resource_uri = resource_uri
        self.resource_name = resource_name
        self.audit_uri = audit_uri
        self.resource_change_utc = resource_change_utc
        self.customer_guid = customer_guid
        self.body_sha256 = body_sha256
        self.status = status
        self.migration_id = migration_id
        self.migration_version = migration_version
        self.refusal = refusal
        self.matched_by: str | None = None

    @staticmethod
    def key(partner_id: str, event_name: str, resource_uri: str, changed: datetime) -> UUID:
        """One notification, however its retry spells the name's case or the time's offset."""
        instant = changed.astimezone(UTC).isoformat()
        return uuid5(_NS, f"{partner_id}\n{event_name.lower()}\n{resource_uri}\n{instant}")

    @classmethod
    def log(
        cls,
        partner_id: str,
        received: Received,
        body_sha256: str,
        status: Status,
        migration_id: UUID | None = None,
        migration_version: int | None = None,
        refusal: str | None = None,
    ) -> IngestedNotification:
        return cls._create(
            cls.Logged,
            id=cls.key(
                partner_id, received.event_name, received.resource_uri, received.resource_change_utc
            ),
            partner_id=partner_id,
            event_name=received.event_name,
            resource_uri=received.resource_uri,
            resource_name=received.resource_name,
            audit_uri=received.audit_uri,
            resource_change_utc=received.resource_change_utc,
            customer_guid=customer_guid(received.resource_uri),
            body_sha256=body_sha256,
            status=str(status),
            migration_id=migration_id,
            migration_version=migration_version,
            refusal=refusal,
        )

    def match(
        self,
        principal: str,
        migration_id: UUID,
        status: Status,
        version: int | None,
        refusal: str | None,
    ) -> None:
        if self.status != Status.UNMATCHED:
            raise Conflict(
                "not_unmatched",
                f"this notification is {self.status}; only unmatched ones can be matched",
                status=self.status,
            )
        self.trigger_event(
            self.Matched,
            principal=principal,
            status=str(status),
            migration_id=migration_id,
            migration_version=version,
            refusal=refusal,
        )

    def received(self) -> Received:
        return Received(
            self.event_name,
            self.resource_uri,
            self.resource_name,
            self.audit_uri,
            self.resource_change_utc,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "partner_id": self.partner_id,
            "event_name": self.event_name,
            "resource_uri": self.resource_uri,
            "resource_name": self.resource_name,
            "audit_uri": self.audit_uri,
            "resource_change_utc": self.resource_change_utc.isoformat(),
            "received_at": self.created_on.isoformat(),
            "customer_guid": self.customer_guid,
            "status": self.status,
            "migration_id": None if self.migration_id is None else str(self.migration_id),
            "migration_version": self.migration_version,
            "refusal": self.refusal,
            "matched_by": self.matched_by,
        }
