"""The tracker application: one method per command, each of the same shape.

get the aggregate -> call one method on it -> save (with the tenant claim when it opens or
closes). Persistence is chosen by the eventsourcing environment (PERSISTENCE_MODULE, ...), so
this module knows no SQL.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    PersistenceError,
    Recording,
    Transcoding,
)
from eventsourcing.utils import strtobool

from domain.chain import ChainingMapper, saving
from domain.commands import Clock, Command, system_clock
from domain.context import Context
from domain.errors import Conflict, DomainError, InvalidInput, NotFound, VersionConflict
from domain.file_lock import FileLock, sqlite_writers_lock
from domain.group_commit import LINGER, MAX_EVENTS, GroupCommit
from domain.locks import KeyedLocks
from domain.migration import Migration
from domain.offers import Catalogue, shipped
from domain.partner import Partner, TenantClaim
from domain.repository import FollowingRepository
from domain.state import MigrationState, StaleState


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


# Called as an item of `Tracker.execute_each` is decided: (its index, the migration after it, its
# events) -> aggregates to save with it.
Decided = Callable[[int, Migration, list[Migration.Event]], Sequence[Any]]
# What became of an item of `Tracker.execute_each`: its events stored, its refusal, or the
# store's failure (then it was not stored).
Outcome = list[Migration.Event] | DomainError | PersistenceError

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
class Past:
    """A migration as it stood at some time: its id, the newest version counted, its state."""

    id: UUID
    version: int
    state: MigrationState
    # Business basis: versions of events dated by then whose subject was recorded later.
    left_out: tuple[int, ...] = ()


@dataclass(frozen=True)
class Recorded:
    """What a command stored: the migration after it, and its new events in order."""

    migration: Migration
    events: list[Migration.Event]


class Tracker(Application[UUID]):
    """The CSP migration tracker. Keep one instance alive per process."""

    name = "csp_tracker"
    # Commands reload their aggregate; the library's LRU cache spares replaying every event,
    # kept current with other processes' writes by following the log (domain.repository).
    env = {"AGGREGATE_CACHE_MAXSIZE": "10000"}
    snapshotting_intervals = {Migration: SNAPSHOT_INTERVAL}

    def __init__(self, env: Any = None, clock: Clock = system_clock) -> None:
        super().__init__(env)
        if getattr(getattr(self.recorder, "datastore", None), "enable_db_functions", False):
            # They insert without the table lock that keeps the log in commit order.
            self.close()
            raise ValueError(
                "POSTGRES_ENABLE_DB_FUNCTIONS is not supported: the aggregate cache follows "
                "the notification log, which must list events in the order they committed"
            )
        # Commands read the time from here (tests inject their own clock).
        self.clock = clock
        # The offer catalogue: the shipped one, extended by the file named in OFFER_CATALOGUE.
        extra = self.env.get("OFFER_CATALOGUE")
        self.offers: Catalogue = Catalogue.from_file(extra) if extra else shipped()
        # Called with the new recordings after each save: the in-process projector uses it
        # to wake up at once instead of waiting for its next poll.
        self.on_saved: list[Callable[[list[Recording[UUID]]], None]] = []
        # One lock per migration id: this process's writers of a migration decide one at a
        # time in `execute`, so they never collide with each other.
        self._writing = KeyedLocks()

    def construct_mapper(self) -> Mapper[UUID]:
        # The library's mapper, plus the stream link of every migration event (domain.chain).
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=ChainingMapper
        )

    def construct_event_store(self) -> EventStore[UUID]:
        # The library's event store over the library's recorder, with concurrent saves of this
        # process committed together (domain.group_commit). The store takes one writer at a
        # time anyway (SQLite's file lock, PostgreSQL's table lock): the committer's turn also
        # queues this process's writers, fairer and cheaper than retrying the database lock.
        # GROUP_COMMIT_MAX_EVENTS caps a transaction (1: every save alone, as before), and
        # GROUP_COMMIT_LINGER_MS bounds a leader's wait for the last group's writers (0: none).
        limit = int(self.env.get("GROUP_COMMIT_MAX_EVENTS") or MAX_EVENTS)
        linger = self.env.get("GROUP_COMMIT_LINGER_MS")
        wait = LINGER if linger in (None, "") else float(linger) / 1000
        if not math.isfinite(wait) or wait < 0:
            raise ValueError(f"GROUP_COMMIT_LINGER_MS must be a number >= 0, not {linger!r}")
        self.commits = GroupCommit(self.recorder, max_events=max(limit, 1), linger=wait)
        # On a SQLite file, each transaction of this process's turn also takes the file's
        # writers' lock, shared with other processes (domain.file_lock).
        if self.env.get("PERSISTENCE_MODULE") == "eventsourcing.sqlite":
            lock = sqlite_writers_lock(self.env.get("SQLITE_DBNAME") or "")
            if lock is not None:
                self.commits.store_lock = lock
        return EventStore(mapper=self.mapper, recorder=self.commits)

    def construct_repository(self) -> FollowingRepository:
        # The library's repository and settings, except that the cache follows the log instead
        # of querying the store on every get (AGGREGATE_CACHE_FASTFORWARD does not apply).
        size = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return FollowingRepository(
            recorder=self.recorder,
            mapper=self.mapper,
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(size) if size else None,
            deepcopy_from_cache=strtobool(self.env.get(self.DEEPCOPY_FROM_AGGREGATE_CACHE, "y")),
        )

    @property
    def repository(self) -> FollowingRepository:
        return cast(FollowingRepository, self._repository)

    def close(self) -> None:
        super().close()
        if isinstance(self.commits.store_lock, FileLock):
            self.commits.store_lock.close()

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        # The library's _record, without its put of the saved aggregates in the cache: the
        # repository caches copies, never older than what it holds (domain.repository).
        stored = {e.originator_id for e in processing_event.events}
        saved = [a for i, a in processing_event.aggregates.items() if i in stored]
        generation = self.repository.began()
        try:
            with saving() as links:
                recordings = self.events.put(
                    processing_event.events,
                    tracking=processing_event.tracking,
                    **processing_event.saved_kwargs,
                )
        except Exception:
            # What is cached of them may be what the store has moved past (another writer's
            # events collided with these): read them again next time.
            self.repository.evict(list(processing_event.aggregates))
            raise
        # The saved migrations now end at the links their last events were stored with.
        for aggregate in saved:
            if isinstance(aggregate, Migration) and aggregate.id in links:
                aggregate._chain_head = links[aggregate.id]
        self.repository.noted(recordings)
        self.repository.saved(generation, saved)
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """The library's, except that a migration saved exactly at a snapshot's version is
        snapshotted as it stands in memory, the fold of the events just stored, instead of being
        read back from the store by `take_snapshot` (a snapshot and up to 99 events, inside
        the writer's save). Any other due snapshot is the library's."""
        events, saved = processing_event.events, processing_event.aggregates
        due = {
            id(e): saved[e.originator_id]
            for e in events
            if e.originator_version % SNAPSHOT_INTERVAL == 0
            and isinstance(saved.get(e.originator_id), Migration)
            and saved[e.originator_id].version == e.originator_version
        }
        if due and self.snapshots is not None:
            # The aggregate's Snapshot class, as the library's take_snapshot picks it.
            self.snapshots.put([Migration.Snapshot.take(m) for m in due.values()])
            rest: ProcessingEvent[UUID] = copy.copy(processing_event)
            rest.events = [e for e in events if id(e) not in due]
            processing_event = rest
        super()._take_snapshots(processing_event)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
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

    def correct_partner_region(self, partner_id: str, region: str) -> Partner:
        partner = self.get_partner(partner_id)
        partner.correct_region(region)
        self.save(partner)
        return partner

    def pin_certificate(
        self, partner_id: str, pem: str, sha256: str, secret_sha256: str | None = None
    ) -> Partner:
        """Pin the partner's webhook certificate (and set its webhook secret, when given)."""
        partner = self.get_partner(partner_id)
        if sha256 != partner.certificate_sha256:
            partner.pin_certificate(pem, sha256)
        if secret_sha256 is not None:
            partner.set_webhook_secret(secret_sha256)
        if not partner.pending_events:
            raise Conflict("certificate_unchanged", "this certificate is already pinned")
        self.save(partner)
        return partner

    def get_partner(self, partner_id: str) -> Partner:
        try:
            partner: Partner = self.repository.get(Partner.key(partner_id))
        except AggregateNotFoundError:
            raise NotFound("unknown_partner", f"partner {partner_id!r} is not registered") from None
        return partner

    # -- commands: one path for every event ------------------------------------------------
    def start(self, ctx: Context, command: Command) -> Recorded:
        """Step 1: a new migration for the actor's partner (`command.fields["partner_id"]`)."""
        partner = self.get_partner(str(command.fields.get("partner_id") or ""))
        fields = {
            **command.fields,
            "partner_id": partner.partner_id,
            "partner_region": partner.region,
        }
        migration = Migration.start(
            uuid4(), Command(command.type, fields), ctx, self.clock(), self.offers
        )
        state = migration.state
        claims = [self._claim(state.partner_id, state.tenant_id, migration.id)]
        if state.tenant_guid is not None:
            claims.append(self._claim(state.partner_id, _guid_key(state.tenant_guid), migration.id))
        try:
            return self._save(migration, *claims)
        except VersionConflict:
            # Another request for the same tenant (domain or GUID) was saved first: report
            # the open migration that holds it.
            for claim in claims:
                try:
                    stored: TenantClaim = self.repository.get(claim.id)
                except AggregateNotFoundError:
                    continue  # this one was not taken: the other claim collided
                stored.take(migration.id)
            raise

    def execute(
        self,
        migration_id: UUID,
        ctx: Context,
        command: Command,
        expected_version: int | None = None,
    ) -> Recorded:
        """Decide `command` on the migration and save what it records, in one transaction
        with the tenant claims it takes or frees.

        With `expected_version`, a migration stored at another version is a VersionConflict.
        Without it the caller set no precondition: when another writer saves first, the
        command is decided again on what that writer stored (a bounded number of times), so
        the answer is the domain's (recorded, or a rule's refusal), not a conflict."""
        return self._execute(migration_id, [(ctx, command)], expected_version, batch=False)

    def execute_many(
        self,
        migration_id: UUID,
        steps: Sequence[tuple[Context, Command]],
        expected_version: int | None = None,
    ) -> Recorded:
        """`execute` for several commands, each with its own context (who, when in the
        business), in order: each is decided on the state the ones before it left, and what
        they all record is saved in ONE transaction, or nothing is. A refusal names the index
        of the command it refused (`DomainError.at_index`); `expected_version` is the version
        before the first."""
        if not steps:
            raise InvalidInput("empty_batch", "a batch holds at least one event")
        return self._execute(migration_id, steps, expected_version, batch=True)

    def execute_each(
        self,
        items: Sequence[tuple[UUID, Context, Command]],
        decided: Decided | None = None,
        expected: Sequence[int | None] | None = None,
    ) -> list[Outcome]:
        """Each item, a command for a migration, as `execute` alone would record it, in order:
        an item sees what the ones before it recorded on its migration, and a refused one
        records nothing (its refusal is its outcome; the others go on). What they record is
        saved in ONE transaction. `decided(index, migration, events)` is called as an item is
        decided, with the migration as it stands after it, and returns aggregates to save with
        it (its idempotency record). Should another writer collide with that save, the items
        are executed one by one instead, each with `execute`, in order (a store failure there is
        the outcome of that item and the ones after it; those before it were stored).
        `expected[i]`, when given and not None, is the version item i's caller expects its
        migration at, as the items before it left it (`execute`'s `expected_version`): at
        another, the item is refused with a VersionConflict."""
        wanted = list(expected) if expected is not None else [None] * len(items)
        # The cache is brought up to the store's head once for all the items.
        with self._writing.holding(item[0] for item in items), self.repository.caught_up():
            outcomes, aggregates, first = self._decide_each(items, decided, wanted)
            if not first:
                return outcomes  # every item refused: nothing to save
            try:
                self.save(*aggregates)
                return outcomes
            except IntegrityError:
                if self._landed(first):
                    return outcomes
        # Each item alone: those stored before a store failure keep their outcome.
        alone: list[Outcome] = []
        for index, item in enumerate(items):
            try:
                alone.append(self._execute_alone(index, item, decided, wanted[index]))
            except PersistenceError as failure:  # the store's: this item and the rest not stored
                alone.extend([failure] * (len(items) - index))
                break
        return alone

    def _decide_each(
        self,
        items: Sequence[tuple[UUID, Context, Command]],
        decided: Decided | None,
        wanted: Sequence[int | None],
    ) -> tuple[list[Outcome], list[Any], list[Migration.Event]]:
        """The items' outcomes, the aggregates to save, and the pending events of one migration
        (to tell whether that save landed after all)."""
        migrations: dict[UUID, Migration] = {}
        claims: dict[UUID, TenantClaim] = {}
        kept: list[Any] = []
        outcomes: list[Outcome] = []
        for index, (migration_id, ctx, command) in enumerate(items):
            try:
                loaded = migrations.get(migration_id)
                migration = self._get_migration(migration_id) if loaded is None else loaded
                migration.ensure_visible_to(ctx)
                _ensure_version(wanted[index], migration.version)
            except DomainError as refusal:
                outcomes.append(refusal)
                continue
            # Only a claim refused can undo a decision after its events were triggered, and only
            # a command naming the GUID of a migration without one takes a claim: that migration
            # is copied to go back to (copies cost: most commands need none).
            claims_guid = migration.state.tenant_guid is None and bool(
                command.fields.get("tenant_guid")
            )
            undo = copy.deepcopy(migration) if claims_guid else None
            done = len(migration.pending_events)
            try:
                self._decide(migration, [(ctx, command)], False, claims)
            except DomainError as refusal:
                if undo is not None:
                    migrations[migration_id] = undo
                outcomes.append(refusal)
                continue
            migrations[migration_id] = migration
            # The library types them by its base class: a migration triggers only its own.
            events = cast("list[Migration.Event]", migration.pending_events[done:])
            if decided is not None:
                kept.extend(decided(index, migration, events))
            outcomes.append(events)
        first = next((list(m.pending_events) for m in migrations.values() if m.pending_events), [])
        return (
            outcomes,
            [*migrations.values(), *claims.values(), *kept],
            cast("list[Migration.Event]", first),
        )

    def _execute_alone(
        self,
        index: int,
        item: tuple[UUID, Context, Command],
        decided: Decided | None,
        expected_version: int | None = None,
    ) -> list[Migration.Event] | DomainError:
        migration_id, ctx, command = item

        def attach(migration: Migration) -> Sequence[Any]:
            if decided is None:
                return []
            events = cast("list[Migration.Event]", list(migration.pending_events))
            return decided(index, migration, events)

        try:
            with self.attaching(attach):
                return self.execute(migration_id, ctx, command, expected_version).events
        except DomainError as refusal:
            return refusal

    def _execute(
        self,
        migration_id: UUID,
        steps: Sequence[tuple[Context, Command]],
        expected_version: int | None,
        *,
        batch: bool,
    ) -> Recorded:
        # This process's writers of one migration load, decide and save one at a time, so
        # they never collide with each other (writers of different migrations are committed
        # together, domain.group_commit): conflicts come from other processes, or from a stale
        # expected_version.
        retries = 10
        collided: VersionConflict | None = None
        decided_on = -1
        claims: dict[UUID, TenantClaim] = {}
        with self._writing.holding([migration_id]):
            for attempt in range(1 + retries):
                migration = self._get_migration(migration_id)
                # Before anything else: ids of others never leak.
                migration.ensure_visible_to(steps[0][0])
                _ensure_version(expected_version, migration.version)
                if collided is not None and migration.version == decided_on and not claims:
                    # Neither the migration nor a claim moved since the last attempt: what
                    # collided was an attached aggregate (an idempotency record a concurrent
                    # retry stored first), and deciding again would collide again.
                    raise collided
                decided_on = migration.version
                claims = self._decide(migration, steps, batch)
                try:
                    # Attached aggregates (Tracker.attaching) are made afresh on every attempt.
                    return self._save(migration, *claims.values())
                except VersionConflict as conflict:
                    if expected_version is not None or attempt == retries:
                        raise  # the caller's precondition no longer holds, or we gave up
                    collided = conflict
        raise AssertionError("unreachable")

    def _decide(
        self,
        migration: Migration,
        steps: Sequence[tuple[Context, Command]],
        batch: bool,
        claims: dict[UUID, TenantClaim] | None = None,
    ) -> dict[UUID, TenantClaim]:
        """Decide each step on `migration` in order (its events pending); the tenant claims
        to save with them: taken when a step names the Entra tenant id, freed when the
        migration closes. `claims` holds those already in hand (read or changed by an earlier
        decision of the same save), and is returned with these added."""
        now = self.clock()
        was_closed = migration.is_closed
        claims = {} if claims is None else claims
        for index, (ctx, command) in enumerate(steps):
            guid_before = migration.state.tenant_guid
            try:
                migration.execute(command, ctx, now, self.offers)
                state = migration.state
                if state.tenant_guid is not None and guid_before is None:
                    guid = _guid_key(state.tenant_guid)
                    claim = self._claim(state.partner_id, guid, migration.id, claims)
                    claims[claim.id] = claim
            except DomainError as refusal:
                if batch:
                    refusal.at_index(index)
                raise
        if migration.is_closed and not was_closed:
            # A closed migration frees its (partner, tenant) pairs in the same transaction
            # (a claim taken earlier in this batch included).
            state = migration.state
            keys = [state.tenant_id]
            if state.tenant_guid:
                keys.append(_guid_key(state.tenant_guid))
            for key in keys:
                claim_id = TenantClaim.key(state.partner_id, key)
                held = claims.get(claim_id) or self.repository.get(claim_id)
                held.release(migration.id)
                claims[claim_id] = held
        return claims

    def _claim(
        self,
        partner_id: str,
        tenant_key: str,
        migration_id: UUID,
        in_hand: dict[UUID, TenantClaim] | None = None,
    ) -> TenantClaim:
        """The claim on (partner, tenant) for `migration_id`; refused while another is open.
        One `in_hand` (not yet saved) is taken as it stands there."""
        claim_id = TenantClaim.key(partner_id, tenant_key)
        claim: TenantClaim | None = (in_hand or {}).get(claim_id)
        if claim is None:
            try:
                claim = self.repository.get(claim_id)
            except AggregateNotFoundError:
                return TenantClaim.open(partner_id, tenant_key, migration_id)
        claim.take(migration_id)
        return claim

    # -- queries -------------------------------------------------------------------------
    def get(self, migration_id: UUID, as_of: datetime | None = None) -> Migration:
        """The migration now, or as the store knew it at `as_of` (replaying only events
        recorded at or before that instant)."""
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

    def as_of(self, migration_id: UUID, at: datetime, basis: str = "recorded") -> Past:
        """The migration at `at`: with basis "recorded", what the store knew then (events
        recorded by then); with basis "business", what had happened by then (events whose
        business time `occurred_at` is at or before it, whenever they were recorded)."""
        if basis == "recorded":
            migration = self.get(migration_id, as_of=at)
            return Past(migration.id, migration.version, migration.state)
        if basis != "business":
            raise InvalidInput("invalid_basis", "basis must be 'recorded' or 'business'")
        happened = [e for e in self.history(migration_id) if e.occurred_at <= at]
        if not happened or happened[0].originator_version != 1:
            raise NotFound(
                "migration_not_found",
                f"migration {migration_id} had not been requested by {at.isoformat()}",
            )
        state, left_out = MigrationState(), []
        for event in happened:
            # A fact dated before the record of what it is about (e.g. a cancellation dated
            # before its original was entered) cannot be placed: it is left out, and named.
            trial = copy.deepcopy(state)
            try:
                event.evolve(trial)
            except KeyError:
                left_out.append(event.originator_version)
                continue
            state = trial
        version = max(e.originator_version for e in happened)
        return Past(migration_id, version, state, tuple(left_out))

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
    def _snapshot_at(
        self, migration_id: UUID, as_of: datetime
    ) -> tuple[Migration | None, int | None]:
        """The newest snapshot whose last event was recorded at or before `as_of`."""
        if self.snapshots is not None:
            try:
                # The store types its events by protocol; these are the library's snapshots of
                # this migration.
                snapshots = cast("Iterator[Snapshot]", self.snapshots.get(migration_id, desc=True))
                for snapshot in snapshots:
                    if snapshot.state["_modified_on"] <= as_of:
                        return cast(Migration, snapshot.mutate(None)), snapshot.originator_version
            except MapperDeserialisationError as error:
                if not isinstance(error.__cause__, StaleState):
                    raise
                # written by an older version: replay from the first event
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
        except MapperDeserialisationError as error:
            if not isinstance(error.__cause__, StaleState):
                raise
            # Its newest snapshot was written by an older version (snapshots are a cache):
            # replay every event; the next snapshot is written in today's format.
            migration = _fold(None, self._events_of(migration_id))
        if not isinstance(migration, Migration):
            raise _not_found(migration_id)
        return migration

    def _landed(self, pending: list[Migration.Event]) -> bool:
        """Whether the store holds exactly these events after all. The PostgreSQL recorder
        retries an insert whose connection dropped; when the first attempt had committed, the
        retry collides with its own events and reports a conflict although the save succeeded
        (the whole transaction, claim and attached records included, is then stored)."""
        if not pending:
            return False
        first, last = pending[0], pending[-1]
        # The store types its events by protocol: these are the migration's own events.
        stored = cast(
            "Iterator[Migration.Event]",
            self.events.get(
                first.originator_id, gt=first.originator_version - 1, lte=last.originator_version
            ),
        )
        return [(type(e), e.timestamp, e.correlation_id) for e in stored] == [
            (type(e), e.timestamp, e.correlation_id) for e in pending
        ]

    def _save(self, migration: Migration, *others: Any) -> Recorded:
        make = _attach.get()
        if make is not None:
            others = (*others, *make(migration))
        # The library types them by its base class: a migration triggers only its own events.
        pending = cast("list[Migration.Event]", list(migration.pending_events))
        try:
            recordings = self.save(migration, *others)
        except IntegrityError:
            if self._landed(pending):
                return Recorded(migration, pending)
            raise VersionConflict(
                message="another writer changed this migration first; reload and retry"
            ) from None
        events = [
            cast(Migration.Event, r.domain_event)  # the migration's own (typed by protocol)
            for r in recordings
            if r.domain_event.originator_id == migration.id
        ]
        return Recorded(migration, events)


def _fold(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's project_aggregate without its per-event runtime Protocol check, which
    cost about a third of loading a long migration."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _guid_key(tenant_guid: str) -> str:
    """Claims on the Entra tenant id live beside those on the domain name."""
    return f"guid:{tenant_guid}"


def _not_found(migration_id: UUID) -> NotFound:
    return NotFound("migration_not_found", f"no migration {migration_id}")


def _ensure_version(expected: int | None, actual: int) -> None:
    """A caller's precondition (If-Match): the migration is at `expected`, if one is given."""
    if expected is not None and expected != actual:
        raise VersionConflict(
            message=f"expected version {expected}, stored is {actual}",
            expected=expected,
            actual=actual,
        )
