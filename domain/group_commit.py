"""Group commit: the saves that arrive while one is being committed go to the store together.

A store transaction costs about the same for one event as for many: SQLite syncs its WAL file
once per commit, and the library's PostgreSQL recorder takes `LOCK TABLE ... EXCLUSIVE` (so
that notification ids commit in order) and waits for one WAL flush per transaction. One event
per transaction therefore caps appends at the store's commit rate, however many requests wait.

`GroupCommit` is the event store's recorder (the library's `AggregateRecorder` interface, the
real recorder underneath). Every save still maps its own events in its own thread, then queues
them and waits. Whichever waiting save gets the committer's turn takes everything queued (up
to `MAX_EVENTS`) and inserts it in ONE transaction of the real recorder, then hands each save
its own notification ids. While it commits, the next group queues up. There is no extra thread:
the leader of each group is one of the waiting callers, so an uncontended save costs one lock.

What each save is promised does not change:
- it returns only after the transaction holding its events committed (durable as before);
- a group is all-or-nothing in the store, so when the combined insert fails (one save collided
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder, StoredEvent

# Events in one transaction at most: a group stops growing here (a save is never split).
MAX_EVENTS = 1000


@dataclass
class _Save:
    events: Sequence[StoredEvent]
    ids: Sequence[int] | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class Stats:
    """What the committer did since it started: transactions and the saves they carried."""

    transactions: int = 0
    saves: int = 0
    events: int = 0
    # Transactions by how many saves they carried (1, 2, ...): the shape of the grouping.
    sizes: dict[int, int] = field(default_factory=dict)


class GroupCommit(AggregateRecorder):
    def __init__(self, recorder: AggregateRecorder, max_events: int = MAX_EVENTS) -> None:
        self.recorder = recorder
        self.max_events = max_events
        self.stats = Stats()
        # Guards the queue and the leader flag; never held across I/O. Waiters sleep on it
        # until their save is done or the committer's turn is free.
        self._changed = threading.Condition(threading.Lock())
        self._queue: list[_Save] = []
        self._leading = False

    @property
    def queued(self) -> int:
        """Saves waiting for a committer."""
        return len(self._queue)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if any(value is not None for value in kwargs.values()):
            # A save with a tracking record (or other recorder arguments) commits alone, in
            # its turn: its arguments belong to its own transaction. The Tracker has none (the
            # library passes `tracking=None`).
            save = _Save(stored_events)
            with self.turn():
                self._alone(save, **kwargs)
        else:
            save = _Save(stored_events)
            with self._changed:
                self._queue.append(save)
            while not save.done:
                with self.turn(save):
                    if not save.done:
                        self._commit(self._next_group())
        if save.error is not None:
            raise save.error
        return save.ids

    @contextmanager
    def turn(self, save: _Save | None = None) -> Iterator[None]:
        """The committer's turn (one at a time); given a save, none once it is done (another
        committer carried it while we waited). Another writer of the same store (the
        in-process projector on SQLite, whose file takes one writer at a time) may take a turn
        too: appends then queue behind it here instead of in SQLite's busy back-off."""
        with self._changed:
            while self._leading and not (save is not None and save.done):
                self._changed.wait()
            if save is not None and save.done:
                yield
                return
            self._leading = True
        try:
            yield
        finally:
            with self._changed:
                self._leading = False
                self._changed.notify_all()

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
    def _next_group(self) -> list[_Save]:
        """The oldest queued saves, up to `max_events` events (always at least one save)."""
        with self._changed:
            size, count = 0, 0
            for save in self._queue:
                if count and size + len(save.events) > self.max_events:
                    break
                size += len(save.events)
                count += 1
            group, self._queue = self._queue[:count], self._queue[count:]
        return group

    def _commit(self, group: list[_Save]) -> None:
        if len(group) == 1:
            self._alone(group[0])
            return
        try:
            ids = self._insert([e for save in group for e in save.events], len(group))
        except Exception:
            # Nothing of the group is stored (one transaction): each save again on its own,
            # so that each gets its own outcome (a conflict, a lost connection, or its ids).
            for save in group:
                self._alone(save)
            return
        start = 0
        for save in group:
            end = start + len(save.events)
            save.ids = None if ids is None else ids[start:end]
            save.done = True
            start = end

    def _alone(self, save: _Save, **kwargs: Any) -> None:
        try:
            save.ids = self._insert(save.events, 1, **kwargs)
        except BaseException as error:
            save.error = error
        save.done = True

    def _insert(
        self, events: Sequence[StoredEvent], saves: int, **kwargs: Any
    ) -> Sequence[int] | None:
        ids = self.recorder.insert_events(events, **kwargs)
        stats = self.stats
        stats.transactions += 1
        stats.saves += saves
        stats.events += len(events)
        stats.sizes[saves] = stats.sizes.get(saves, 0) + 1
        return ids
