"""Group commit: the saves that arrive while one is being committed go to the store together.

A store transaction costs about the same for one event as for many: SQLite syncs its WAL file
once per commit, and the library's PostgreSQL recorder takes `LOCK TABLE ... EXCLUSIVE` (so
that notification ids commit in order) and waits for one WAL flush per transaction. One event
per transaction therefore caps appends at the store's commit rate, however many requests wait.

`GroupCommit` is the event store's recorder (the library's `AggregateRecorder` interface, the
real recorder underneath). Every save still maps its own events in its own thread, then queues
them. A save that finds no committer becomes the leader: it takes everything queued (up to
`MAX_EVENTS`) and inserts it in ONE transaction of the real recorder, hands each save its own
notification ids and wakes it, then passes the committer's turn to the oldest save still
queued, which leads the next group (the saves that arrived during the commit). There is no
extra thread, an uncontended save costs one lock, and each waiting save is woken once: when it
is done, or when it is its turn to lead.

What each save is promised does not change:
- it returns only after the transaction holding its events committed (durable as before);
- a group is all-or-nothing in the store, so when the combined insert is refused (one save collided
  with another writer's version, say) each save of the group is inserted again on its own, in
  order, and gets its own outcome: one save's conflict is never another's;
- the events of one save stay contiguous and in order in the notification log, and the log has
  no gaps a reader could pass (the real recorder's own guarantee, now per group).

Writers of the same aggregate in this process are serialised before they get here (the
Tracker's per-migration locks), so a group never holds two saves of one aggregate from them;
should it hold one anyway (a partner edited twice at once), the fallback gives one save its
events and the other its conflict, exactly as separate transactions would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    IntegrityError,
    PersistenceError,
    StoredEvent,
)

# Events in one transaction at most: a group stops growing here (a save is never split).
MAX_EVENTS = 1000
# How long a leader may wait for its group to fill (seconds), see GroupCommit._gather, and for
# the next writer to come back, as a share of that: writers woken together come back within
# a few hundred microseconds of each other; one that is not back by then is busy elsewhere
# (taking a snapshot, say), and the group goes without it.
LINGER = 0.001
GAP = 0.25


class _Waiter:
    """A save queued for the committer (`events`), or a writer that wants the committer's turn
    for itself (`events` None: the in-process projector, a save with a tracking record)."""

    __slots__ = ("done", "error", "events", "ids", "leads", "woken")

    def __init__(self, events: Sequence[StoredEvent] | None) -> None:
        self.events = events
        self.ids: Sequence[int] | None = None
        self.error: BaseException | None = None
        self.done = False  # committed, or refused: `ids` or `error` is its outcome
        self.leads = False  # it was handed the committer's turn
        self.woken = threading.Event()


@dataclass
class Stats:
    """What the committer did since it started: transactions and the saves they carried."""

    transactions: int = 0
    saves: int = 0
    events: int = 0
    # Transactions by how many saves they carried (1, 2, ...): the shape of the grouping.
    sizes: dict[int, int] = field(default_factory=dict)


class GroupCommit(AggregateRecorder):
    def __init__(
        self, recorder: AggregateRecorder, max_events: int = MAX_EVENTS, linger: float = LINGER
    ) -> None:
        self.recorder = recorder
        self.max_events = max_events
        self.linger = linger
        # Entered around each transaction of the turn's holder: the writers' lock shared with
        # other processes of the same SQLite file (domain.file_lock), or nothing.
        self.store_lock: Callable[[], AbstractContextManager[Any]] = nullcontext
        self.stats = Stats()
        # Guards the queue and the leader flag; never held across I/O. While someone leads,
        # arrivals queue; when nobody leads, the queue is empty.
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._leading = False
        # Saves the next group should hold (see _gather), and a leader waiting for them.
        self._expected = 0
        self._grown = threading.Condition(self._lock)
        self._gathering = False

    @property
    def queued(self) -> int:
        """Saves waiting for a committer."""
        return sum(1 for waiter in self._queue if waiter.events is not None)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if any(value is not None for value in kwargs.values()):
            # A save with a tracking record (or other recorder arguments) commits alone, in
            # its turn: its arguments belong to its own transaction. The Tracker has none (the
            # library passes `tracking=None`).
            with self.turn():
                return self.recorder.insert_events(stored_events, **kwargs)
        save = _Waiter(stored_events)
        if self._wait(save):
            # Leading: ours is the oldest queued save, so the group carries it.
            try:
                try:
                    self._gather()
                except BaseException:  # interrupted while waiting: ours leaves the queue
                    with self._lock:
                        if self._queue and self._queue[0] is save:
                            self._queue.pop(0)
                    raise
                self._commit(self._next_group())
            finally:
                self._hand_over()
        if save.error is not None:
            raise save.error
        return save.ids

    @contextmanager
    def turn(self) -> Iterator[None]:
        """The committer's turn, for a writer of the same store that is not a save (the
        in-process projector on SQLite, whose file takes one writer at a time): appends queue
        behind it here instead of in SQLite's busy back-off, and go together after it."""
        self._wait(_Waiter(None))
        try:
            with self.store_lock():
                yield
        finally:
            self._hand_over()

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return self.recorder.select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)

    # -- the committer's turn ------------------------------------------------------------
    def _wait(self, waiter: _Waiter) -> bool:
        """Queue `waiter` until it leads (True) or, a save, another leader carried it (False)."""
        with self._lock:
            if not self._leading:
                self._leading = True
                if waiter.events is not None:
                    self._queue.append(waiter)  # the queue was empty: ours is the oldest
                return True
            self._queue.append(waiter)
            if self._gathering:
                self._grown.notify()
        try:
            waiter.woken.wait()
        except BaseException:
            self._abandon(waiter)
            raise
        return waiter.leads

    def _abandon(self, waiter: _Waiter) -> None:
        """An interrupted wait: leave the queue, or pass on the turn if it was handed to us.
        (A save already taken by a leader stays with it: its outcome is then unknown.)"""
        with self._lock:
            if not waiter.leads:
                if any(w is waiter for w in self._queue):
                    self._queue.remove(waiter)
                return
            if self._queue and self._queue[0] is waiter:
                self._queue.pop(0)
        self._hand_over()

    def _hand_over(self) -> None:
        """Pass the committer's turn to the oldest waiter, or free it when none is left."""
        with self._lock:
            if not self._queue:
                self._leading = False
                return
            oldest = self._queue[0]
            if oldest.events is None:
                self._queue.pop(0)  # a turn for itself: it leaves the queue as it leads
            oldest.leads = True
        oldest.woken.set()

    def _gather(self) -> None:
        """Wait, at most `linger`, until the saves whose writers were busy when the last group
        was taken are queued: that group's and those queued behind it.

        Concurrent writers otherwise settle into groups of one and groups of the rest, in
        turn: of the writers woken after a commit, the first back leads at once and commits
        alone while the others queue behind it (measured: 8 writers on PostgreSQL, transactions
        of 1 and 8 saves in turn, 4.3 on average). Waiting for them makes one
        transaction (one table lock, one flush) for all. A writer alone (the API's appender,
        say) never waits, nor does a group that a writer wanting the turn ends anyway, or one
        that is full; the wait ends as soon as the group is complete, so under steady load it
        lasts as long as the writers take to come back; when a writer does not come back, it
        ends GAP x `linger` after the last arrival, and never lasts longer than `linger`.
        The same idea as PostgreSQL's commit_delay or MySQL's binlog_group_commit_sync_delay,
        but adaptive."""
        if self.linger <= 0:
            return
        with self._lock:
            deadline = None
            arrived = -1  # saves queued when last looked
            while self._expected > 1:
                saves = events = 0
                for waiter in self._queue:
                    if waiter.events is None:  # a writer wants the turn next: go now
                        return
                    saves += 1
                    events += len(waiter.events)
                if saves >= self._expected or events >= self.max_events:
                    return
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.linger
                if saves != arrived:  # someone came back: give the next one `gap` to follow
                    arrived, quiet = saves, now + self.linger * GAP
                if now >= deadline or now >= quiet:
                    return
                self._gathering = True
                try:
                    self._grown.wait(min(deadline, quiet) - now)
                finally:
                    self._gathering = False

    def _next_group(self) -> list[_Waiter]:
        """The oldest queued saves, up to `max_events` events (at least one save), and up to
        the first writer that wants a turn for itself (it goes next)."""
        with self._lock:
            size, count = 0, 0
            for waiter in self._queue:
                events = waiter.events
                if events is None or (count and size + len(events) > self.max_events):
                    break
                size += len(events)
                count += 1
            group, self._queue = self._queue[:count], self._queue[count:]
            self._expected = count + sum(1 for w in self._queue if w.events is not None)
        return group

    def _commit(self, group: list[_Waiter]) -> None:
        try:
            if len(group) == 1:
                self._alone(group[0])
                return
            try:
                ids = self._insert([e for save in group for e in save.events or ()], len(group))
            except IntegrityError:
                # Nothing of the group is stored (one transaction), and a conflict is one
                # save's: each save again on its own, so that each gets its own outcome. (Any
                # other failure is the store's, not a save's: all share it, below, rather than
                # each paying a lock timeout again in turn.)
                for save in group:
                    self._alone(save)
                return
            start = 0
            for save in group:
                end = start + len(save.events or ())
                save.ids = None if ids is None else ids[start:end]
                save.done = True
                start = end
        except Exception as error:  # the store failed, not one save: each would alone too
            for save in group:
                if not save.done:
                    save.error, save.done = error, True
        except BaseException as error:  # interrupted: no save may wait for ever
            unknown = PersistenceError("the committing thread was interrupted: outcome unknown")
            unknown.__cause__ = error
            for save in group:
                if not save.done:
                    save.error, save.done = unknown, True
            raise
        finally:
            for save in group:
                save.woken.set()

    def _alone(self, save: _Waiter) -> None:
        try:
            save.ids = self._insert(save.events or (), 1)
        except Exception as error:
            save.error = error
        save.done = True

    def _insert(self, events: Sequence[StoredEvent], saves: int) -> Sequence[int] | None:
        with self.store_lock():
            ids = self.recorder.insert_events(events)
        stats = self.stats
        stats.transactions += 1
        stats.saves += saves
        stats.events += len(events)
        stats.sizes[saves] = stats.sizes.get(saves, 0) + 1
        return ids
