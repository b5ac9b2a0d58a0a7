"""The aggregate cache, kept current by following the notification log.

The library's repository keeps aggregates in an LRU cache and, with `fastforward` on (its
default), asks the store for newer events of an aggregate on every `get`: one query per command
(a round trip on PostgreSQL), which also decodes again the events this very process saved last.
With `fastforward` off, the library puts each saved aggregate in the cache and trusts it: right
when the process is the store's only writer, and wrong otherwise. Ours is not always the only
one: several `csp-tracker serve` processes may share a store, and the CLI writes keys and
partners into a running server's store.

`FollowingRepository` is the library's repository with `fastforward` off, plus what makes that
right with other writers: before a `get`, it reads the store's head (its highest notification
id). When every notification since the last look was written by this process (`noted`, from each
save's recordings), the cache is current and nothing else is read. Otherwise it reads those
notifications once, in one query, and applies each other writer's events to the cached
aggregate they belong to (or evicts it when they do not follow on from its version). A batch of
commands follows the log once for all of them (`caught_up`).

A saved aggregate is cached as a copy (the library caches the caller's object, which the caller
may go on changing), with the stream link its save ended at (domain.chain).

A command that decides on a cached aggregate another process has just moved on still cannot
store anything stale: its save collides with the newer version in the store (optimistic
concurrency, as with the library's fast-forward, whose query can be overtaken the same way), and
a save that fails drops its aggregates from the cache, so that a retry reads them again.

One race is particular to this scheme: a `get` that loads an aggregate from the store (a cache
miss), or a save that puts its aggregate in the cache, may put it there just after a look at the
log has applied another writer's newer events to it (or found it absent). Every change the look
makes is numbered (`_generation`); a `get` or a save that overlaps a change to its aggregate
drops what it put in the cache, and the `get` reads it again.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Cache, LRUCache, Repository
from eventsourcing.domain import CanMutateProtocol
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification, Recording

# Notifications since the last look above which the cache is emptied rather than followed (a
# process that was idle while another wrote a lot).
CLEAR_ABOVE = 10_000
# The changes remembered for overlapping gets and saves; one older than these is taken as
# overlapping (the aggregate is read again: correct, only slower).
REMEMBERED = 256


class FollowingRepository(Repository[UUID]):
    def __init__(
        self, *, recorder: ApplicationRecorder, mapper: Mapper[UUID], **kwargs: Any
    ) -> None:
        super().__init__(fastforward=False, **kwargs)
        self.recorder = recorder
        self.mapper = mapper
        self._lock = threading.Lock()  # one look at a time; guards everything below
        # Other writers' events are applied up to this notification id (None: not looked yet).
        self._seen: int | None = None
        # Ids above `_seen` of this process's own saves.
        self._own: set[int] = set()
        # Each change to the cache made by a look (ids, None for all), numbered.
        self._generation = 0
        self._changes: deque[tuple[int, frozenset[UUID] | None]] = deque(maxlen=REMEMBERED)
        self._local = threading.local()
        self.looks = 0  # how often the log was read for other writers' events (for tests)

    # -- the library's interface -------------------------------------------------------------
    def get(self, aggregate_id: UUID, *, version: int | None = None, **kwargs: Any) -> Any:
        if version is not None or not self.cache:
            return super().get(aggregate_id, version=version, **kwargs)
        if not getattr(self._local, "caught_up", False):
            self.follow()
        while True:
            generation = self._generation
            aggregate = super().get(aggregate_id, **kwargs)
            if not self._changed_since(generation, aggregate_id):
                return aggregate
            self.evict(aggregate_id)  # it may have been put there stale: read it again

    # -- following the log -------------------------------------------------------------------
    @contextmanager
    def caught_up(self) -> Iterator[None]:
        """Follow the log once; `get`s in this thread inside the block do not look again (a
        batch of commands, decided together on what the store held when it began)."""
        if getattr(self._local, "caught_up", False):
            yield
            return
        self._local.head = self.follow()
        self._local.caught_up = True
        try:
            yield
        finally:
            self._local.caught_up = False

    def head(self) -> int:
        """The store's head: inside `caught_up`, as read when the block began."""
        if getattr(self._local, "caught_up", False):
            return int(self._local.head)
        return self.recorder.max_notification_id() or 0

    def follow(self) -> int:
        """Bring the cache up to the store's head, and return it: apply the events other
        writers stored since the last look to the cached aggregates they belong to."""
        with self._lock:
            head = self.recorder.max_notification_id() or 0
            seen = self._start(head)
            if head == seen:
                return head
            if head < seen or head - seen > CLEAR_ABOVE:  # a store emptied, or a long way off
                self._clear_all(head)
                return head
            own = self._own
            others = (head - seen) - sum(1 for i in own if i <= head)
            self._own = {i for i in own if i > head}
            self._seen = head
            if not others:
                return head
            self.looks += 1
            notifications = self.recorder.select_notifications(
                seen, limit=head - seen, stop=head, inclusive_of_start=False
            )
            theirs: dict[UUID, list[Notification]] = {}
            for n in notifications:
                if n.id not in own:
                    theirs.setdefault(_uuid(n.originator_id), []).append(n)
            self._apply(theirs)
            return head

    def noted(self, recordings: Iterable[Recording[UUID]]) -> None:
        """This process's save stored these: a look at the log need not read them."""
        with self._lock:
            if self._seen is None:
                return
            seen = self._seen
            self._own.update(r.notification.id for r in recordings if r.notification.id > seen)

    def began(self) -> int:
        """Before a save: the change number to pass to `saved`. Starts following the log if
        nothing did yet, so that what the save puts in the cache is followed from then on."""
        with self._lock:
            if self._seen is None:
                self._start(self.recorder.max_notification_id() or 0)
            return self._generation

    def saved(self, generation: int, aggregates: Mapping[UUID, Any]) -> None:
        """After a save that put these aggregates in the cache: keep a copy of each instead
        (the caller keeps the aggregate it saved, and may change it), except of those a look
        changed meanwhile, which are dropped (the save may have put a version older than the one
        the look applied)."""
        if not self.cache:
            return
        for aggregate_id, aggregate in aggregates.items():
            if self._changed_since(generation, aggregate_id):
                self.evict(aggregate_id)
            else:
                self.cache.put(aggregate_id, copy.deepcopy(aggregate))

    def evict(self, aggregate_ids: UUID | Sequence[UUID]) -> None:
        if not self.cache:
            return
        for aggregate_id in [aggregate_ids] if isinstance(aggregate_ids, UUID) else aggregate_ids:
            with suppress(KeyError):
                self.cache.get(aggregate_id, evict=True)

    # -- inside a look (holding the lock) ------------------------------------------------------
    def _start(self, head: int) -> int:
        if self._seen is None:
            # Nothing is cached from before the first look: what is in the store up to now will
            # be read from the store.
            self._seen = head
        return self._seen

    def _clear_all(self, head: int) -> None:
        # A new cache: the library's LRUCache.clear() empties its recency list, not its entries.
        self._changed(None)
        old = self.cache
        self.cache = LRUCache(maxsize=old.maxsize) if isinstance(old, LRUCache) else Cache()
        self._own = set()
        self._seen = head

    def _apply(self, theirs: dict[UUID, list[Notification]]) -> None:
        assert self.cache
        # Numbered before the cache changes: a get or a save that read the number earlier sees
        # the change, and one that reads it later started after the look began.
        self._changed(frozenset(theirs))
        for aggregate_id, notifications in theirs.items():
            try:
                cached = self.cache.get(aggregate_id, evict=True)
            except KeyError:
                continue  # not cached: the next get reads it from the store
            try:
                aggregate: Any = copy.deepcopy(cached)
                for n in notifications:
                    if n.originator_version != aggregate.version + 1:
                        break  # not the next event (ours not noted yet, say): leave it out
                    event = cast("CanMutateProtocol[Any]", self.mapper.to_domain_event(n))
                    aggregate = event.mutate(aggregate)
                else:
                    self.cache.put(aggregate_id, aggregate)
            except Exception:  # left out of the cache: the next get reads it (and reports)
                continue

    def _changed(self, ids: frozenset[UUID] | None) -> None:
        self._generation += 1
        self._changes.append((self._generation, ids))

    def _changed_since(self, generation: int, aggregate_id: UUID) -> bool:
        if generation == self._generation:
            return False  # the common case, without the lock
        with self._lock:
            changes = list(self._changes)
        if not changes or changes[0][0] > generation + 1:
            return True  # older than what is remembered
        return any(
            number > generation and (ids is None or aggregate_id in ids) for number, ids in changes
        )


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
