"""The tracker application: one method per command, each of the same shape.

get the aggregate -> call one method on it -> save (with the tenant claim when it opens or
closes). Persistence is chosen by the eventsourcing environment (PERSISTENCE_MODULE, ...), so
this module knows no SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Recording, Transcoding

from domain.context import Context
from domain.errors import Conflict, NotFound, VersionConflict
from domain.migration import Migration
from domain.partner import Partner, TenantClaim
from domain.state import MigrationState


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


# Set only inside `Tracker.attaching(...)`: extra aggregates to save with the next command.
_attach: ContextVar[Callable[[Migration], Sequence[Any]] | None] = ContextVar(
    "csp_tracker_attach", default=None
)


class MigrationStateAsDict(Transcoding):
    """Snapshots hold the derived state; it round-trips through plain JSON values."""

    type = MigrationState
    name = "migration_state"

    def encode(self, obj: MigrationState) -> dict[str, Any]:
        return obj.to_dict()

    def decode(self, data: dict[str, Any]) -> MigrationState:
        return MigrationState.from_dict(data)


# A snapshot every this many events: loading or time-travelling a long migration then folds
# at most this many events (docs/performance.md has the measurements). Snapshots are a cache:
# if MigrationState changes shape, delete them (they are rebuilt as new events arrive).
SNAPSHOT_INTERVAL = 100


@dataclass(frozen=True)
class Recorded:
    """What a command stored: the migration after it, and its new events in order."""

    migration: Migration
    events: list[Migration.Event]


class Tracker(Application[UUID]):
    """The CSP migration tracker. Keep one instance alive per process."""

    name = "csp_tracker"
    # Commands reload their aggregate; the library's LRU cache (fast-forwarded from the store
    # on every get, so several processes stay consistent) spares replaying every event.
    env = {"AGGREGATE_CACHE_MAXSIZE": "10000"}
    snapshotting_intervals = {Migration: SNAPSHOT_INTERVAL}

    def __init__(self, env: Any = None) -> None:
        super().__init__(env)
        # Called with the new recordings after each save: the in-process projector uses it
        # to wake up at once instead of waiting for its next poll.
        self.on_saved: list[Callable[[list[Recording]], None]] = []
        # The store takes one writer at a time anyway (SQLite's file lock, PostgreSQL's
        # table lock): queueing this process's writers here is fairer and much cheaper than
        # letting them retry the database lock with back-off sleeps.
        self._write_lock = threading.Lock()

    def _record(self, processing_event: ProcessingEvent) -> list[Recording]:
        with self._write_lock:
            return super()._record(processing_event)

    def _notify(self, recordings: list[Recording]) -> None:
        for listener in self.on_saved:
            listener(recordings)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        transcoder.register(MigrationStateAsDict())

    # -- partners ----------------------------------------------------------------------
    def register_partner(self, partner_id: str, name: str, region: str) -> Partner:
        partner = Partner.register(partner_id, name, region)
        try:
            self.save(partner)
        except IntegrityError:
            raise Conflict(
                "partner_exists", f"partner {partner_id!r} is already registered"
            ) from None
        return partner

    def get_partner(self, partner_id: str) -> Partner:
        try:
            return self.repository.get(Partner.key(partner_id))
        except AggregateNotFoundError:
            raise NotFound("unknown_partner", f"partner {partner_id!r} is not registered") from None

    # -- step 1: the relationship request ------------------------------------------------
    def request_relationship(
        self,
        ctx: Context,
        *,
        partner_id: str,
        tenant_id: str,
        customer_name: str,
        customer_region: str,
        channel: str,
        multi_partner: bool = False,
    ) -> Recorded:
        partner = self.get_partner(partner_id)
        migration = Migration.request_relationship(
            ctx,
            partner_id=partner.partner_id,
            partner_region=partner.region,
            tenant_id=tenant_id,
            customer_name=customer_name,
            customer_region=customer_region,
            channel=channel,
            multi_partner=multi_partner,
        )
        claim_id = TenantClaim.key(partner.partner_id, migration.state.tenant_id)
        try:
            claim = self.repository.get(claim_id)
        except AggregateNotFoundError:
            claim = TenantClaim.open(partner.partner_id, migration.state.tenant_id, migration.id)
        else:
            claim.take(migration.id)
        try:
            return self._save(migration, claim)
        except VersionConflict:
            # Another request for the same pair was saved first: report the open one.
            self.repository.get(claim_id).take(migration.id)
            raise

    # -- steps 2 to 4 --------------------------------------------------------------------
    def record_original(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        offer_id: str,
        offer_name: str,
        licenses: int,
        term_end: date,
        purchased_via: str,
        billing_cycle: str,
        auto_renew: bool = True,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.record_original(
                ctx,
                subscription_id=subscription_id,
                offer_id=offer_id,
                offer_name=offer_name,
                licenses=licenses,
                term_end=term_end,
                purchased_via=purchased_via,
                billing_cycle=billing_cycle,
                auto_renew=auto_renew,
            ),
        )

    def accept_invitation(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        accepted_by: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.accept_invitation(ctx, accepted_by=accepted_by),
        )

    def grant_admin_access(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        kind: str,
        expires_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.grant_admin_access(ctx, kind=kind, expires_at=expires_at),
        )

    def remove_admin_access(
        self, migration_id: UUID, ctx: Context, *, expected_version: int | None = None
    ) -> Recorded:
        return self._update(
            migration_id, ctx, expected_version, lambda m: m.remove_admin_access(ctx)
        )

    def disable_auto_renew(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.disable_auto_renew(ctx, subscription_id=subscription_id),
        )

    def retire_offer(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.retire_offer(ctx, subscription_id=subscription_id),
        )

    def provision_subscription(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        replaces: str,
        offer_id: str,
        offer_name: str,
        licenses: int,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.provision_subscription(
                ctx,
                subscription_id=subscription_id,
                replaces=replaces,
                offer_id=offer_id,
                offer_name=offer_name,
                licenses=licenses,
            ),
        )

    def reassign_licenses(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.reassign_licenses(ctx, subscription_id=subscription_id),
        )

    def change_licenses(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        licenses: int,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.change_licenses(ctx, subscription_id=subscription_id, licenses=licenses),
        )

    def record_expiry(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.record_expiry(ctx, subscription_id=subscription_id),
        )

    def record_cancellation(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        cancelled_by: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.record_cancellation(
                ctx, subscription_id=subscription_id, cancelled_by=cancelled_by
            ),
        )

    def request_credit(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        requested_by: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.request_credit(
                ctx, subscription_id=subscription_id, requested_by=requested_by
            ),
        )

    def resolve_credit(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        subscription_id: str,
        outcome: str,
        amount: Decimal | None = None,
        currency: str | None = None,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id,
            ctx,
            expected_version,
            lambda m: m.resolve_credit(
                ctx,
                subscription_id=subscription_id,
                outcome=outcome,
                amount=amount,
                currency=currency,
            ),
        )

    def abandon(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        reason: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id, ctx, expected_version, lambda m: m.abandon(ctx, reason=reason)
        )

    def add_note(
        self,
        migration_id: UUID,
        ctx: Context,
        *,
        text: str,
        expected_version: int | None = None,
    ) -> Recorded:
        return self._update(
            migration_id, ctx, expected_version, lambda m: m.add_note(ctx, text=text)
        )

    # -- queries -------------------------------------------------------------------------
    def get(self, migration_id: UUID, as_of: datetime | None = None) -> Migration:
        """The migration now, or as it stood at `as_of` (replaying only events recorded
        at or before that instant)."""
        if as_of is None:
            return self._get_migration(migration_id)
        migration, after = self._snapshot_at(migration_id, as_of)
        for event in self._events_of(migration_id, after):
            if event.timestamp > as_of:
                break
            migration = event.mutate(migration)
        if migration is None:
            raise NotFound(
                "migration_not_found",
                f"migration {migration_id} did not exist at {as_of.isoformat()}",
            )
        return migration

    def history(self, migration_id: UUID) -> list[Migration.Event]:
        events = list(self._events_of(migration_id))
        if not events:
            raise _not_found(migration_id)
        return events

    @contextmanager
    def attaching(self, make: Callable[[Migration], Sequence[Any]]) -> Iterator[None]:
        """Within the block, a command also saves the aggregates `make(migration)` returns
        (called after the decision, before the save), in the same transaction as the
        migration's events: the API stores its idempotency records this way."""
        token = _attach.set(make)
        try:
            yield
        finally:
            _attach.reset(token)

    # -- plumbing ------------------------------------------------------------------------
    def _snapshot_at(self, migration_id: UUID, as_of: datetime) -> tuple[Any, int | None]:
        """The newest snapshot whose last event was recorded at or before `as_of`."""
        if self.snapshots is not None:
            for snapshot in self.snapshots.get(migration_id, desc=True):
                if snapshot.state["_modified_on"] <= as_of:
                    return snapshot.mutate(None), snapshot.originator_version
        return None, None

    def _events_of(self, migration_id: UUID, after: int | None = None) -> Iterator[Migration.Event]:
        for event in self.events.get(migration_id, gt=after):
            if not isinstance(event, Migration.Event):
                raise _not_found(migration_id)
            yield event

    def _get_migration(self, migration_id: UUID) -> Migration:
        try:
            migration = self.repository.get(migration_id, projector_func=_fold)
        except AggregateNotFoundError:
            raise _not_found(migration_id) from None
        if not isinstance(migration, Migration):
            raise _not_found(migration_id)
        return migration

    def _update(
        self,
        migration_id: UUID,
        ctx: Context,
        expected_version: int | None,
        decide: Callable[[Migration], None],
    ) -> Recorded:
        migration = self._get_migration(migration_id)
        migration.ensure_visible_to(ctx)  # before anything else: ids of others never leak
        if expected_version is not None and expected_version != migration.version:
            raise VersionConflict(
                message=f"expected version {expected_version}, stored is {migration.version}",
                expected=expected_version,
                actual=migration.version,
            )
        decide(migration)
        claim = None
        if migration.is_closed:
            # A closed migration frees its (partner, tenant) pair in the same transaction.
            claim = self.repository.get(
                TenantClaim.key(migration.state.partner_id, migration.state.tenant_id)
            )
            claim.release(migration.id)
        return self._save(migration, claim)

    def _landed(self, pending: list[Migration.Event]) -> bool:
        """Whether the store holds exactly these events after all. The PostgreSQL recorder
        retries an insert whose connection dropped; when the first attempt had committed, the
        retry collides with its own events and reports a conflict although the save succeeded
        (the whole transaction, claim and attached records included, is then stored)."""
        if not pending:
            return False
        first, last = pending[0], pending[-1]
        stored = self.events.get(
            first.originator_id, gt=first.originator_version - 1, lte=last.originator_version
        )
        return [(type(e), e.timestamp, e.correlation_id) for e in stored] == [
            (type(e), e.timestamp, e.correlation_id) for e in pending
        ]

    def _save(self, migration: Migration, *others: Any) -> Recorded:
        make = _attach.get()
        if make is not None:
            others = (*others, *make(migration))
        pending = list(migration.pending_events)
        try:
            recordings = self.save(migration, *others)
        except IntegrityError:
            if self._landed(pending):
                return Recorded(migration, pending)
            raise VersionConflict(
                message="another writer changed this migration first; reload and retry"
            ) from None
        events = [
            r.domain_event for r in recordings if r.domain_event.originator_id == migration.id
        ]
        return Recorded(migration, events)


def _fold(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's project_aggregate without its per-event runtime Protocol check, which
    cost about a third of loading a long migration."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _not_found(migration_id: UUID) -> NotFound:
    return NotFound("migration_not_found", f"no migration {migration_id}")
