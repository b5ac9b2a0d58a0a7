"""The aggregate cache, kept current by following the notification log.

The library's repository keeps aggregates in an LRU cache and, with `fastforward` on (its
default), asks the store for newer events of an aggregate on every `get`: one query per command
(a round trip on PostgreSQL), which also decodes again the events this very process saved last.
With `fastforward` off, the library puts each saved aggregate in the cache and trusts it: right
when the process is the store's only writer, and wrong otherwise. Ours is not always the only
one: several `csp-tracker serve` processes may share a store, and the CLI writes keys and
partners into a running server's store.

`FollowingRepository` keeps the library's cache, its loading (`_reconstruct_aggregate`: the
newest snapshot, then the events after it) and its copy per caller, and replaces how the cache
stays current:

- Before a `get` it reads the store's head (its highest notification id). The notifications
  since the last look that this process did not write (`noted`, from each save's recordings)
  are read from the log in one query, and each event is applied to the cached aggregate it
  belongs to; one that does not follow on from the cached version evicts it. When every
  notification since the last look is this process's own, nothing else is read. (A gap in the
  ids, which PostgreSQL leaves for each rolled-back insert, costs one read of the log that finds
  nothing.) A batch of commands looks once for all of them (`caught_up`).
- A save caches a copy of each aggregate it stored events of (`saved`; the Tracker's `_record`
  leaves out the library's put of the caller's own object, which the caller may go on changing).
- Every put keeps the cache moving forward: under one lock, an aggregate never replaces a
  cached one of the same or a higher version, and an aggregate loaded or saved while it was
  changed (by a look, a save or an eviction; each change is numbered, `_generation`) is not put
  at all: a look may have applied events the loaded one lacks, and a save's copy may have left
  the cache already. A load that overlapped a change is handed to its caller, not cached.
- A save that fails drops its aggregates from the cache, so that a retry reads them again.

A command that decides on a cached aggregate another process moves on a moment later still
cannot store anything stale: its save collides with the newer version (optimistic concurrency,
as with the library's fast-forward, whose query can be overtaken the same way).

The log must list events in the order they committed, which the library's recorders ensure:
SQLite has one writer at a time, and the PostgreSQL recorder locks the table for each insert.
Its optional database functions (POSTGRES_ENABLE_DB_FUNCTIONS) insert without that lock: a look
could pass an id that commits later, so the Tracker refuses them.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Cache, LRUCache, Repository, project_aggregate
from eventsourcing.domain import CanMutateProtocol
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification, Recording

# Notifications since the last look above which the cache is emptied rather than followed (a
# process that was idle while another wrote a lot).
CLEAR_ABOVE = 10_000
# Aggregates whose last change is remembered; past that, every load or save in progress is
# taken as overlapping a change (its aggregate is not cached: correct, only slower).
REMEMBERED = 100_000


class FollowingRepository(Repository[UUID]):
    def __init__(
        self, *, recorder: ApplicationRecorder, mapper: Mapper[UUID], **kwargs: Any
    ) -> None:
        super().__init__(fastforward=False, **kwargs)
        self.recorder = recorder
        self.mapper = mapper
        # Guards the cache's contents and everything below; never held across I/O.
        self._lock = threading.Lock()
        # One reader of the log at a time (held across its query, before `_lock`).
        self._looking = threading.Lock()
        # Other writers' events are applied up to this notification id (None: not looked yet).
        self._seen: int | None = None
        # Ids above `_seen` of this process's own saves.
        self._own: set[int] = set()
        # Changes to the cache are numbered: the last change of each aggregate, and of all.
        self._generation = 0
        self._last_change: dict[UUID, int] = {}
        self._all_changed = 0
        self._local = threading.local()
        self.looks = 0  # how often the log was read for other writers' events

    # -- the library's interface -------------------------------------------------------------
    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = project_aggregate,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        if version is not None or not self.cache:
            return super().get(aggregate_id, version=version, projector_func=projector_func)
        self.catch_up()
        generation = self._generation
        try:
            aggregate = self.cache.get(aggregate_id)
        except KeyError:
            loaded = self._reconstruct_aggregate(aggregate_id, None, projector_func)
            # Not cached when it changed meanwhile; it is at least as new as the store was when
            # this get began, and only this caller has it.
            kept = self._keep(aggregate_id, loaded, generation)
            aggregate = loaded if kept is None else kept
        if deepcopy_from_cache and self.deepcopy_from_cache:
            aggregate = copy.deepcopy(aggregate)
        return aggregate

    # -- following the log -------------------------------------------------------------------
    @contextmanager
    def caught_up(self) -> Iterator[None]:
        """Follow the log once; `get`s in this thread inside the block do not look again: a
        batch of commands is decided on what the store held when it began, at least (an
        aggregate read from the store inside it, or moved on by another thread's look, may be
        newer)."""
        if getattr(self._local, "caught_up", False):
            yield
            return
        self.follow()
        self._local.caught_up = True
        try:
            yield
        finally:
            self._local.caught_up = False

    def catch_up(self) -> None:
        """Follow the log, unless this thread is inside `caught_up`."""
        if not getattr(self._local, "caught_up", False):
            self.follow()

    @property
    def generation(self) -> int:
        """The number of the latest change to the cache; with `changed_since`, whatever was
        derived from an aggregate read after this is current while the aggregate is unchanged."""
        return self._generation

    def changed_since(self, generation: int, aggregate_id: UUID) -> bool:
        """Whether the aggregate may have changed since `generation`, in this process or
        another (only after a look at the log: `catch_up` first). Always True without a cache:
        then nothing is followed."""
        return not self.cache or self._changed_since(generation, aggregate_id)

    def follow(self) -> int:
        """Bring the cache up to the store's head, and return it: apply the events other
        writers stored since the last look to the cached aggregates they belong to."""
        head = self.recorder.max_notification_id() or 0
        if not self.cache:
            return head
        with self._looking:
            with self._lock:
                seen = self._start(head)
                if head <= seen:  # another thread looked as far since this one read the head
                    return head
                own = {i for i in self._own if i <= head}
                if len(own) == head - seen:  # all of them this process's own
                    self._accounted(head)
                    return head
                if head - seen > CLEAR_ABOVE:
                    self._clear_all(head)
                    return head
            # Only then is the log read, outside `_lock`: loads, saves and other threads'
            # looks that need no read go on meanwhile. Should it fail, nothing is accounted
            # for: the next look reads the same notifications.
            notifications = self.recorder.select_notifications(
                seen, limit=head - seen, stop=head, inclusive_of_start=False
            )
            with self._lock:
                theirs: dict[UUID, list[Notification]] = {}
                for n in notifications:
                    if n.id not in self._own:
                        theirs.setdefault(_uuid(n.originator_id), []).append(n)
                self.looks += 1
                self._apply(theirs)
                self._accounted(head)
        return head

    def noted(self, recordings: Iterable[Recording[UUID]]) -> None:
        """This process's save stored these: a look at the log need not read them."""
        if not self.cache:
            return
        with self._lock:
            if self._seen is None:
                return
            seen = self._seen
            self._own.update(r.notification.id for r in recordings if r.notification.id > seen)

    def began(self) -> int:
        """Before a save: the change number to pass to `saved`. Starts following the log if
        nothing did yet, so that what the save caches is followed from then on."""
        if not self.cache:
            return 0
        if self._seen is None:
            head = self.recorder.max_notification_id() or 0
            with self._lock:
                self._start(head)
        return self._generation

    def saved(self, generation: int, aggregates: Sequence[Any]) -> None:
        """After a save: cache a copy of each aggregate it stored events of (the caller keeps
        the aggregate it saved). Should a copy fail, the rest are dropped from the cache: their
        events are this process's own, which no look applies."""
        if not self.cache:
            return
        for index, aggregate in enumerate(aggregates):
            try:
                kept = copy.deepcopy(aggregate)
            except BaseException:
                self.evict([a.id for a in aggregates[index:]])
                raise
            self._keep(aggregate.id, kept, generation, evict=True)

    def evict(self, aggregate_ids: UUID | Sequence[UUID]) -> None:
        if not self.cache:
            return
        ids = [aggregate_ids] if isinstance(aggregate_ids, UUID) else list(aggregate_ids)
        with self._lock:
            # A change: a load begun before it must not put back what it read.
            self._changed(ids)
            for aggregate_id in ids:
                with suppress(KeyError):
                    self.cache.get(aggregate_id, evict=True)

    # -- the cache's contents --------------------------------------------------------------------
    def _keep(
        self, aggregate_id: UUID, aggregate: Any, generation: int, evict: bool = False
    ) -> Any:
        """Put `aggregate`, unless the cache holds one as new or newer (that one is returned),
        or it changed since `generation` (None is returned). For a save (`evict`): the cached one
        is dropped in that case (the save's aggregate may be older than the events a look
        applied), and either way this is a change, so that a load begun before the save does
        not put back an older version once the save's copy has left the cache (LRU)."""
        assert self.cache
        with self._lock:
            try:
                if self._changed_since(generation, aggregate_id):
                    if evict:
                        with suppress(KeyError):
                            self.cache.get(aggregate_id, evict=True)
                    return None
                with suppress(KeyError):
                    cached = self.cache.get(aggregate_id)
                    if cached.version >= aggregate.version:
                        return cached
                self.cache.put(aggregate_id, aggregate)
                return aggregate
            finally:
                if evict:
                    self._changed([aggregate_id])

    def _start(self, head: int) -> int:
        if self._seen is None:
            # Nothing is cached from before the first look: what is in the store up to now will
            # be read from the store.
            self._seen = head
        return self._seen

    def _accounted(self, head: int) -> None:
        self._seen = head
        self._own = {i for i in self._own if i > head}

    def _clear_all(self, head: int) -> None:
        self._changed_all()
        # A new cache: the library's LRUCache.clear() empties its recency list, not its entries.
        old = self.cache
        self.cache = LRUCache(maxsize=old.maxsize) if isinstance(old, LRUCache) else Cache()
        self._accounted(head)

    def _apply(self, theirs: dict[UUID, list[Notification]]) -> None:
        assert self.cache
        # Numbered before the cache changes: a load or a save that read the number earlier
        # sees the change.
        self._changed(theirs)
        for aggregate_id, notifications in theirs.items():
            try:
                cached = self.cache.get(aggregate_id, evict=True)
            except KeyError:
                continue  # not cached: the next get reads it from the store
            try:
                aggregate: Any = copy.deepcopy(cached)
                for n in notifications:
                    if n.originator_version <= aggregate.version:
                        continue  # already in it (cached by a save after the look began)
                    if n.originator_version != aggregate.version + 1:
                        break  # not the next event: leave it out of the cache
                    event = cast("CanMutateProtocol[Any]", self.mapper.to_domain_event(n))
                    aggregate = event.mutate(aggregate)
                else:
                    self.cache.put(aggregate_id, aggregate)
            except Exception:  # left out of the cache: the next get reads it (and reports)
                continue

    def _changed(self, ids: Iterable[UUID]) -> None:
        """Number a change of these aggregates (holding `_lock`)."""
        self._generation += 1
        if len(self._last_change) > REMEMBERED:
            self._changed_all()
        for aggregate_id in ids:
            self._last_change[aggregate_id] = self._generation

    def _changed_all(self) -> None:
        self._generation += 1
        self._all_changed = self._generation
        self._last_change = {}

    def _changed_since(self, generation: int, aggregate_id: UUID) -> bool:
        last = max(self._all_changed, self._last_change.get(aggregate_id, 0))
        return last > generation


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
