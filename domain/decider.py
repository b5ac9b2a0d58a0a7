"""decide(state, command, ctx, now, offers) -> the events to record, or a refusal.

Every command goes through here: the checks every event shares (the migration exists and is
visible to the actor, the role may record it, the migration is still open, the business time is
not in the future), then the event class's own `decide`, then step 4 of the seed (completion),
recorded by the tracker itself, dated at the business time of the fact that completed it.
Pure: the caller passes the time (`now`) and the offer catalogue.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain import events
from domain.commands import Command
from domain.context import SYSTEM, Context
from domain.errors import Conflict, InvalidInput, NotFound, RuleViolated
from domain.migration import Migration
from domain.offers import Catalogue
from domain.roles import ensure_permitted
from domain.state import MigrationState
from domain.vocabulary import Role, Stage

EVENTS: dict[str, type[Migration.Event]] = {cls.wire_name(): cls for cls in events.ALL}
START = events.RelationshipRequested
# Recorded by the tracker itself, never asked for.
NOT_REQUESTABLE = frozenset({events.MigrationCompleted.wire_name()})
_PROBE_ID = UUID(int=0)


@dataclass(frozen=True)
class Decision:
    """One event to record: its class and every value it is constructed with (metadata and
    fields, without the library's id, version and recorded time)."""

    event_class: type[Migration.Event]
    values: dict[str, Any]

    @property
    def type(self) -> str:
        return self.event_class.wire_name()

    @property
    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k not in _METADATA}

    def probe(self, now: datetime) -> Migration.Event:
        """The event as it would be recorded (for evolving a copy of the state)."""
        extra = {"originator_topic": ""} if self.event_class is START else {}
        return self.event_class(
            originator_id=_PROBE_ID, originator_version=0, timestamp=now, **extra, **self.values
        )


_METADATA = frozenset({"principal", "role", "occurred_at", "correlation_id"})


def decide(
    state: MigrationState, command: Command, ctx: Context, now: datetime, offers: Catalogue
) -> list[Decision]:
    event_class = EVENTS.get(command.type)
    if event_class is None or command.type in NOT_REQUESTABLE:
        raise InvalidInput(
            "unknown_event_type",
            f"no event type {command.type!r} can be recorded",
            allowed=sorted(set(EVENTS) - NOT_REQUESTABLE),
        )
    starting = event_class is START
    if starting != (state.requested_at is None):
        if starting:
            raise Conflict("migration_exists", "this migration was already requested")
        raise NotFound("migration_not_found", "no such migration")
    if not starting and ctx.partner_id is not None and ctx.partner_id != state.partner_id:
        raise NotFound("migration_not_found", "no such migration")
    ensure_permitted(command.type, event_class.ROLES, ctx.role)
    if state.closed and not (state.closed == Stage.COMPLETED and event_class.AFTER_COMPLETION):
        raise Conflict("migration_closed", f"the migration is {state.closed}", stage=state.closed)
    at = ctx.business_time(now)
    if (
        state.requested_at is not None
        and at < state.requested_at
        and not starting
        and not event_class.BEFORE_REQUEST
    ):
        raise RuleViolated(
            "before_request",
            "this happened before the reseller relationship was requested "
            f"({state.requested_at.isoformat()}): facts of the migration cannot precede it",
            requested_at=state.requested_at.isoformat(),
        )
    fields = event_class.decide(state, command.fields, at, offers)
    decided = [Decision(event_class, {**_metadata(ctx, at), **fields})]
    if _may_complete(state, event_class):
        after = copy.deepcopy(state)
        decided[0].probe(now).evolve(after)
        if after.closed is None and after.is_complete:
            system = Context(SYSTEM, Role.SYSTEM, ctx.correlation_id)
            completed_at = after.progress_at or at
            decided.append(Decision(events.MigrationCompleted, _metadata(system, completed_at)))
    return decided


def _may_complete(state: MigrationState, event_class: type[Migration.Event]) -> bool:
    """Whether the completion check is worth a copy of the state: an open, accepted migration
    with replacements, and an event that can change what completion depends on."""
    return (
        state.closed is None
        and event_class.MAY_COMPLETE
        and state.accepted_at is not None
        and (bool(state.replacements) or event_class is events.SubscriptionProvisioned)
    )


def _metadata(ctx: Context, at: datetime) -> dict[str, Any]:
    return {
        "principal": ctx.principal,
        "role": ctx.role,
        "occurred_at": at,
        "correlation_id": ctx.correlation_id,
    }
