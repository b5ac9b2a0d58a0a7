"""Steps 1 and 2 of the seed: the reseller relationship is requested and accepted, and the
partner's admin access (DAP or GDAP) to the customer's tenant comes and goes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from domain import fields as f
from domain import roles
from domain.errors import Conflict, InvalidInput, NotFound, RuleViolated
from domain.migration import TOPIC_PREFIX, Migration
from domain.offers import Catalogue
from domain.state import AdminRelationship, MigrationState
from domain.vocabulary import AdminAccessKind

# "GDAP relationships last at most 730 days."
GDAP_MAX_DURATION = timedelta(days=730)
# "The reseller link has not granted DAP since 2023": no new DAP from this date on.
DAP_GRANTS_ENDED = datetime(2023, 10, 1, tzinfo=UTC)


RelationshipRequested = Migration.RelationshipRequested


class InvitationAccepted(Migration.Event):
    """Step 2: the customer's Global admin accepts the reseller relationship."""

    TOPIC = TOPIC_PREFIX + "invitation_accepted"
    ROLES = roles.CUSTOMER_OBSERVED | roles.SYSTEM_ONLY  # system: Partner Center's webhook
    STEP = 2
    # Version 2: the Entra tenant id, when it becomes known at acceptance.
    class_version = 2
    accepted_by: str
    tenant_guid: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["tenant_guid"] = None

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        if state.accepted_at is not None:
            raise Conflict("already_accepted", "the invitation was already accepted")
        guid = f.tenant_guid(c)
        if guid is not None and state.tenant_guid not in (None, guid):
            raise RuleViolated(
                "tenant_guid_mismatch",
                "the request named another Entra tenant id",
                tenant_guid=state.tenant_guid,
            )
        return {"accepted_by": f.text(c, "accepted_by"), "tenant_guid": guid}

    def evolve(self, state: MigrationState) -> None:
        state.accepted_by = self.accepted_by
        state.accepted_at = self.occurred_at
        if self.tenant_guid is not None:
            state.tenant_guid = self.tenant_guid
        state.progressed(self.occurred_at)


class AdminAccessGranted(Migration.Event):
    """The customer approved a DAP or GDAP relationship. Several may be live at once."""

    MAY_COMPLETE = False

    TOPIC = TOPIC_PREFIX + "admin_access_granted"
    ROLES = roles.PARTNER | roles.SYSTEM_ONLY
    STEP = 2
    # Version 2: relationships are named (several GDAP relationships may be live at once).
    class_version = 2
    kind: str
    expires_at: datetime | None
    relationship_id: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        # Version 1 had one slot: each grant replaced the one before, as a re-grant of one
        # relationship id does now.
        state["relationship_id"] = "legacy"

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        kind = f.choice(c, "kind", AdminAccessKind)
        expires_at = f.instant(c, "expires_at")
        relationship_id = f.optional_text(c, "relationship_id") or kind
        if kind == AdminAccessKind.DAP and at >= DAP_GRANTS_ENDED:
            raise RuleViolated(
                "dap_not_available",
                "Partner Center has not granted new DAP relationships since 2023-10-01: "
                "ask the customer for GDAP",
            )
        if kind == AdminAccessKind.GDAP:
            if expires_at is None:
                raise InvalidInput("invalid_expires_at", "GDAP access needs expires_at")
            if expires_at - at > GDAP_MAX_DURATION:
                raise InvalidInput("invalid_expires_at", "GDAP relationships last at most 730 days")
        if expires_at is not None and expires_at <= at:
            raise InvalidInput("invalid_expires_at", "expires_at must be after the grant")
        existing = state.admin_access.get(relationship_id)
        if existing is not None and existing.live_at(at):
            raise Conflict(
                "relationship_exists",
                f"relationship {relationship_id!r} is already live",
                relationship_id=relationship_id,
            )
        return {"kind": kind, "expires_at": expires_at, "relationship_id": relationship_id}

    def evolve(self, state: MigrationState) -> None:
        old = state.admin_access.pop(self.relationship_id, None)
        if old is not None:
            # A relationship granted again under the same id supersedes the old one, which is
            # kept (ended at the new grant at the latest) for business-time questions.
            if old.removed_at is None or old.removed_at > self.occurred_at:
                old.removed_at = max(self.occurred_at, old.granted_at)
            history = f"{old.relationship_id}@{old.granted_at.isoformat()}"
            state.admin_access[history] = old
        state.admin_access[self.relationship_id] = AdminRelationship(
            self.relationship_id, self.kind, self.occurred_at, self.expires_at
        )


class AdminAccessRemoved(Migration.Event):
    """A relationship ended before its expiry (or every one did, without `relationship_id`)."""

    MAY_COMPLETE = False

    TOPIC = TOPIC_PREFIX + "admin_access_removed"
    ROLES = roles.CUSTOMER_OBSERVED | roles.SYSTEM_ONLY
    STEP = 2
    class_version = 2
    relationship_id: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["relationship_id"] = None

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        relationship_id = f.optional_text(c, "relationship_id")
        if relationship_id is not None:
            found = state.admin_access.get(relationship_id)
            if found is None or not found.live_at(at):
                raise NotFound(
                    "unknown_relationship",
                    f"no live admin relationship {relationship_id!r}",
                    relationship_id=relationship_id,
                )
        elif not state.has_admin_access(at):
            raise Conflict("no_admin_access", "the partner holds no delegated admin access")
        return {"relationship_id": relationship_id}

    def evolve(self, state: MigrationState) -> None:
        for r in state.admin_access.values():
            if self.relationship_id in (None, r.relationship_id) and r.removed_at is None:
                r.removed_at = self.occurred_at


class TenantIdentified(Migration.Event):
    """The customer's Microsoft Entra tenant id became known (e.g. an operator matched a
    Partner Center notification to this migration): from then on it identifies the tenant."""

    TOPIC = TOPIC_PREFIX + "tenant_identified"
    ROLES = roles.ADMIN_ONLY | roles.SYSTEM_ONLY
    STEP = 1
    MAY_COMPLETE = False
    tenant_guid: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        guid = f.tenant_guid(c)
        if guid is None:
            raise InvalidInput(
                "missing_tenant_guid", "tenant_guid is required", field="tenant_guid"
            )
        if state.tenant_guid == guid:
            raise Conflict("tenant_already_identified", "this tenant id is already recorded")
        if state.tenant_guid is not None:
            raise RuleViolated(
                "tenant_guid_mismatch",
                "the migration names another Entra tenant id",
                tenant_guid=state.tenant_guid,
            )
        return {"tenant_guid": guid}

    def evolve(self, state: MigrationState) -> None:
        state.tenant_guid = self.tenant_guid
