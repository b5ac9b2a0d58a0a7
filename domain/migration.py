"""The Migration aggregate: one customer tenant moving to one CSP partner.

The aggregate is a thin shell around a decider (`domain.decider.decide`): a command is decided
against the current state into events, and each event evolves the state. The events live in
`domain.events`, one module per part of the seed's four steps; each knows its wire name (the
suffix of its stable TOPIC), the roles that may record it, how a command for it is decided, and
how it evolves the state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain import fields as f
from domain import regions, roles
from domain.chain import GENESIS, LINK, PREV
from domain.context import Context
from domain.errors import InvalidInput, NotFound, RuleViolated
from domain.offers import Catalogue
from domain.state import MigrationState
from domain.vocabulary import Channel, Role

TOPIC_PREFIX = "csp_tracker.migration:"


def event_type(event: object) -> str:
    """The wire name of an event: the suffix of its stable topic."""
    topic: str = type(event).TOPIC  # type: ignore[attr-defined]  # every event class names one
    return topic.rpartition(":")[2]


class Migration(Aggregate):
    TOPIC = "csp_tracker.migration:Migration"

    def __init__(self) -> None:
        self.state = MigrationState()
        # The stream link of the last stored event (domain.chain): the next event commits to it.
        self._chain_head: str | None = None

    class Event(Aggregate.Event):
        """Every migration event carries who (principal, role), when in the business
        (`occurred_at`; the library's `timestamp` is when it was recorded) and the request it
        belongs to (correlation id)."""

        principal: str
        role: str
        occurred_at: datetime
        correlation_id: str

        # Each concrete event's stable topic (declared here for type checkers only: the library
        # looks it up with getattr, so the base class must not define it).
        TOPIC: ClassVar[str]
        ROLES: ClassVar[frozenset[Role]] = frozenset()
        # May be recorded after completion: the billing tail (credits) and notes.
        AFTER_COMPLETION: ClassVar[bool] = False
        # Whether it can change what completion depends on (scope, endings, replacements,
        # reassignments, totals): if not, deciding it skips the completion check.
        MAY_COMPLETE: ClassVar[bool] = True
        # May its business time precede the relationship request? Only facts about what the
        # customer held before (its originals).
        BEFORE_REQUEST: ClassVar[bool] = False
        # Which of the seed's four steps it belongs to (1 request, 2 accept and provision,
        # 3 the originals end, 4 carry on); 0: any step (a note).
        STEP: ClassVar[int] = 0

        @classmethod
        def wire_name(cls) -> str:
            return cls.TOPIC.rpartition(":")[2]

        @classmethod
        def decide(
            cls, state: MigrationState, fields: Mapping[str, Any], at: datetime, offers: Catalogue
        ) -> dict[str, Any]:
            """The event's fields for a command with `fields` at business time `at`, or a
            refusal (a DomainError). Pure: reads nothing but its arguments."""
            raise NotImplementedError

        def apply(self, aggregate: Migration) -> None:
            self.evolve(aggregate.state)
            stored_link = self.__dict__.get(LINK)  # set when decoded from the store
            if stored_link is not None:
                aggregate._chain_head = stored_link

        def evolve(self, state: MigrationState) -> None:
            """Apply this event to derived state. Overridden per event."""

    class RelationshipRequested(Event, Aggregate.Created):
        """Step 1: the partner requests a reseller relationship with the customer's tenant."""

        TOPIC = TOPIC_PREFIX + "relationship_requested"
        ROLES = roles.SALES
        STEP = 1
        # Version 2: the Entra tenant id (`tenant_guid`) and the customer's country, if given.
        class_version = 2
        partner_id: str
        partner_region: str
        tenant_id: str
        tenant_guid: str | None
        customer_name: str
        customer_region: str
        customer_country: str | None
        channel: str
        multi_partner: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["tenant_guid"] = None
            state["customer_country"] = None

        @classmethod
        def decide(
            cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
        ) -> dict[str, Any]:
            try:
                partner = regions.place(f.text(c, "partner_region"), "partner_region")
            except InvalidInput:
                raise RuleViolated(
                    "invalid_partner_region",
                    f"the partner's registered region {c.get('partner_region')!r} is not a CSP "
                    "region: correct it with `csp-tracker partners set-region`",
                ) from None
            customer = regions.place(f.text(c, "customer_region"), "customer_region")
            values = {
                "partner_id": f.text(c, "partner_id"),
                "partner_region": partner.region,
                "tenant_id": f.tenant_domain(c),
                "tenant_guid": f.tenant_guid(c),
                "customer_name": f.text(c, "customer_name"),
                "customer_region": customer.region,
                "customer_country": customer.country,
                "channel": f.choice(c, "channel", Channel),
                "multi_partner": f.flag(c, "multi_partner", False),
            }
            if partner.region != customer.region:
                raise RuleViolated(
                    "region_mismatch",
                    f"the partner is in {partner.region} but the customer's tenant is in "
                    f"{customer.region}: the partner must be in the same region",
                    partner_region=partner.region,
                    customer_region=customer.region,
                )
            return values

        def evolve(self, state: MigrationState) -> None:
            state.partner_id = self.partner_id
            state.partner_region = self.partner_region
            state.tenant_id = self.tenant_id
            state.tenant_guid = self.tenant_guid
            state.customer_name = self.customer_name
            state.customer_region = self.customer_region
            state.customer_country = self.customer_country
            state.channel = self.channel
            state.multi_partner = self.multi_partner
            state.requested_at = self.occurred_at

    Created = RelationshipRequested  # the library's name for the creation event

    # -- commands ------------------------------------------------------------------------
    @classmethod
    def start(
        cls, migration_id: UUID, command: Any, ctx: Context, now: datetime, offers: Catalogue
    ) -> Migration:
        """Step 1 of the seed: a new migration from a relationship request."""
        from domain.decider import decide

        first, *rest = decide(MigrationState(), command, ctx, now, offers)
        # On a new migration decide() accepts only the creation event (RelationshipRequested).
        created = cast("type[Migration.RelationshipRequested]", first.event_class)
        migration = cls._create(created, id=migration_id, timestamp=now, **first.values)
        for decision in rest:
            migration.trigger_event(decision.event_class, timestamp=now, **decision.values)
        migration._note_chain_head()
        return migration

    def execute(self, command: Any, ctx: Context, now: datetime, offers: Catalogue) -> None:
        """Decide `command` against the current state and record the events it yields."""
        from domain.decider import decide

        for decision in decide(self.state, command, ctx, now, offers):
            self.trigger_event(decision.event_class, timestamp=now, **decision.values)
        self._note_chain_head()

    def _note_chain_head(self) -> None:
        """Tell the first unsaved event which stored link it follows (domain.chain; the
        mapper links the others of the same save to each other)."""
        for event in self.pending_events:
            if PREV not in event.__dict__:
                object.__setattr__(event, PREV, self._chain_head or GENESIS)

    # -- helpers -------------------------------------------------------------------------
    def __deepcopy__(self, memo: dict[int, Any]) -> Migration:
        """The aggregate cache hands out a copy per command (the library's deepcopy): copy the
        state (MigrationState.__deepcopy__) and the pending events; the rest of the aggregate
        (its id, version, times and stream link) is immutable and shared. The generic deepcopy
        rebuilt each UUID and datetime through copyreg: about 6 % of an HTTP append's
        samples in a profile (docs/performance.md, section 1)."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(self.__dict__)
        new.state = copy.deepcopy(self.state, memo)
        # Empty in the cache; a command's copy gets its own events (_note_chain_head sets
        # their stream link after the fact).
        new._pending_events = copy.deepcopy(self._pending_events, memo)
        return new

    @property
    def is_closed(self) -> bool:
        return self.state.closed is not None

    def ensure_visible_to(self, ctx: Context) -> None:
        """Another partner's migration does not exist for this actor (ids never leak)."""
        if ctx.partner_id is not None and ctx.partner_id != self.state.partner_id:
            raise NotFound("migration_not_found", f"no migration {self.id}")


# Every event class must be known (its topic registered) wherever a Migration is loaded, e.g.
# by a projector process that imports nothing else of the domain.
from domain import events as _events  # noqa: E402, F401
