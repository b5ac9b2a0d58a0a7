"""Adversarial specs for domain/group_commit.py: what a reviewer tried in order to break it.

Stress with many threads and a projector-like turn taker, injected failures through a wrapper
recorder, lost acknowledgements of a whole group, and interrupted waiters / leaders.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from domain.application import Recorded, Tracker
from domain.errors import VersionConflict
from tests.factories import ADMIN, record
from tests.integration.test_group_commit import concurrently, note, opened


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    return tracker


class Wrapper:
    """The real recorder, with a hook around each insert the committer makes."""

    def __init__(self, real: Any, hook: Callable[[Any, Any], Any]) -> None:
        self.real = real
        self.hook = hook
        self.calls: list[int] = []

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
        self.calls.append(len(stored_events))
        return self.hook(stored_events, lambda: self.real.insert_events(stored_events, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def wrap(app: Tracker, hook: Callable[[Any, Any], Any]) -> Wrapper:
    wrapper = Wrapper(app.commits.recorder, hook)
    app.commits.recorder = wrapper
    return wrapper


def run_threads(targets: list[Callable[[], Any]], timeout: float = 60) -> list[Any]:
    outcomes: list[Any] = [None] * len(targets)

    def run(i: int) -> None:
        try:
            outcomes[i] = targets[i]()
        except BaseException as error:
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(targets))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not hung, f"threads {hung} never returned (queue={len(getattr(targets, '_q', []))})"
    return outcomes


# -- 1. stress: ids handed to each save are its own, contiguous; no loss, no hang -----------------
class TestStress:
    def test_many_writers_and_a_turn_taker_every_save_gets_its_own_ids(self, app):
        mids = opened(app, 24)
        head = app.recorder.max_notification_id() or 0
        saved: list[list[Any]] = []
        guard = threading.Lock()

        def on_saved(recordings: list[Any]) -> None:
            with guard:
                saved.append(recordings)

        app.on_saved.append(on_saved)
        stop = threading.Event()
        turns = [0]

        def projector() -> None:
            while not stop.is_set():
                with app.commits.turn():
                    app.recorder.max_notification_id()
                    turns[0] += 1
                time.sleep(random.random() * 0.002)

        proj = threading.Thread(target=projector, daemon=True)
        proj.start()
        per = 12

        def writer(mid: UUID, k: int) -> Callable[[], Any]:
            def go() -> Any:
                out = []
                for n in range(per):
                    out.append(record(app, "note_added", mid, ADMIN, text=f"{k}-{n}"))
                return out

            return go

        # two writers per migration: they are serialised by the KeyedLocks, never conflict
        targets = [writer(mid, k) for k, mid in enumerate(mids)] + [
            writer(mid, 100 + k) for k, mid in enumerate(mids)
        ]
        try:
            outcomes = run_threads(targets, timeout=120)
        finally:
            stop.set()
            proj.join(10)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors[:3]
        total = len(targets) * per
        log = app.recorder.select_notifications(head + 1, limit=10 * total)
        assert [n.id for n in log] == list(range(head + 1, head + 1 + total))
        by_id = {n.id: (n.originator_id, n.originator_version) for n in log}
        seen = set()
        for recordings in saved:
            ids = [r.notification.id for r in recordings]
            assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # contiguous
            for r in recordings:
                e = r.domain_event
                assert by_id[r.notification.id] == (e.originator_id, e.originator_version)
                seen.add(r.notification.id)
        assert seen == set(by_id)
        assert turns[0] > 0
        assert not app.commits._leading and not app.commits._queue


# -- 2. an injected per-save failure in a group stays that save's --------------------------------
class TestInjectedFailures:
    def test_a_poisoned_save_fails_alone_and_only_it(self, app):
        mids = opened(app, 8)

        def hook(events: Any, insert: Callable[[], Any]) -> Any:
            if any(b"poison" in e.state for e in events):
                raise IntegrityError("injected")
            return insert()

        wrap(app, hook)
        jobs = [note(app, mid, "poison" if i == 3 else "ok") for i, mid in enumerate(mids)]
        outcomes = concurrently(app, jobs)
        assert isinstance(outcomes[3], VersionConflict), outcomes[3]
        assert all(isinstance(o, Recorded) for i, o in enumerate(outcomes) if i != 3), outcomes
        assert [app.get(m).version for i, m in enumerate(mids)] == [
            1 if i == 3 else 2 for i in range(8)
        ]

    def test_a_group_whose_commit_acknowledgement_was_lost_is_answered_as_stored(self, app):
        mids = opened(app, 8)
        first = [True]

        def hook(events: Any, insert: Callable[[], Any]) -> Any:
            ids = insert()
            if first[0] and len(events) > 1:
                first[0] = False
                return insert()  # the library's retry meets the group's own events
            return ids

        wrap(app, hook)
        outcomes = concurrently(app, [note(app, mid, "once") for mid in mids])
        assert all(isinstance(o, Recorded) for o in outcomes), outcomes
        for mid in mids:
            assert [e.text for e in app.history(mid)[1:]] == ["once"]


# -- 3. interrupts --------------------------------------------------------------------------------
def _interrupt_main_when(condition: Callable[[], bool]) -> threading.Thread:
    def go() -> None:
        deadline = time.monotonic() + 10
        while not condition():
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def _save_in_thread(app: Tracker, mid: UUID, text: str) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def go() -> None:
        try:
            out.append(record(app, "note_added", mid, ADMIN, text=text))
        except BaseException as error:
            out.append(error)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, out


needs_main = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread() or os.name != "posix",
    reason="needs SIGINT delivered to the main thread",
)


def turn_held_elsewhere(app: Tracker) -> tuple[threading.Thread, threading.Event]:
    """Another thread holds the committer's turn until the event is set."""
    release = threading.Event()

    def busy() -> None:
        with app.commits.turn():
            release.wait(10)

    holder = threading.Thread(target=busy, daemon=True)
    holder.start()
    while not app.commits._leading:
        time.sleep(0.001)
    return holder, release


def assert_a_later_save_lands(app: Tracker, mid: UUID) -> None:
    thread, out = _save_in_thread(app, mid, "after")
    thread.join(5)
    assert out and isinstance(out[0], Recorded), (
        f"the next save hangs: leading={app.commits._leading}, queue={app.commits._queue[:1]}"
    )


@needs_main
class TestInterruptedWaiters:
    def test_a_save_interrupted_while_queued_does_not_stall_the_committer(self, app):
        """Ctrl-C while the main thread's save waits for the committer: the turn must still
        reach the saves after it."""
        mids = opened(app, 2)
        holder, release = turn_held_elsewhere(app)  # a projector holding the turn
        _interrupt_main_when(lambda: app.commits.queued >= 1)
        with pytest.raises(KeyboardInterrupt):
            record(app, "note_added", mids[0], ADMIN, text="interrupted")
        release.set()
        holder.join(5)
        assert_a_later_save_lands(app, mids[1])

    def test_a_turn_taker_interrupted_while_queued_does_not_stall_the_committer(self, app):
        mids = opened(app, 1)
        holder, release = turn_held_elsewhere(app)
        _interrupt_main_when(lambda: len(app.commits._queue) >= 1)
        # e.g. `csp-tracker rebuild`'s view write, Ctrl-C
        with pytest.raises(KeyboardInterrupt), app.commits.turn():
            pass
        release.set()
        holder.join(5)
        assert_a_later_save_lands(app, mids[0])


@needs_main
class TestAnInterruptedLeader:
    def test_its_interrupt_is_not_reported_to_the_other_saves_of_its_group(self, app):
        """The main thread leads a group; Ctrl-C arrives after the group's transaction
        committed. The other saves were stored: they must not be told KeyboardInterrupt."""
        mids = opened(app, 4)
        committed = threading.Event()

        def hook(events: Any, insert: Callable[[], Any]) -> Any:
            ids = insert()
            if len(events) > 1 and threading.current_thread() is threading.main_thread():
                committed.set()
                time.sleep(5)  # interrupted here, after the commit
            return ids

        release = threading.Event()
        entered = threading.Event()

        def busy() -> None:
            with app.commits.turn():
                entered.set()
                release.wait(10)

        holder = threading.Thread(target=busy, daemon=True)
        holder.start()
        entered.wait(5)
        wrap(app, hook)
        # the main thread's save queues first (it will lead), then three others
        others: list[tuple[threading.Thread, list[Any]]] = []

        def queue_others_then_release() -> None:
            while app.commits.queued < 1:
                time.sleep(0.001)
            for mid in mids[1:]:
                others.append(_save_in_thread(app, mid, "other"))
            while app.commits.queued < 4:
                time.sleep(0.001)
            release.set()

        threading.Thread(target=queue_others_then_release, daemon=True).start()
        _interrupt_main_when(committed.is_set)
        with pytest.raises(KeyboardInterrupt):
            record(app, "note_added", mids[0], ADMIN, text="leader")
        for t, _ in others:
            t.join(5)
        outcomes = [out[0] if out else "hung" for _, out in others]
        stored = [len(app.history(mid)) for mid in mids[1:]]
        assert stored == [2, 2, 2]  # the group committed
        # Recorded, or an ordinary error saying the outcome is unknown: never the leader's
        # KeyboardInterrupt, which is not the other saves' to raise.
        assert all(isinstance(o, (Recorded, Exception)) for o in outcomes), (
            f"outcomes of saves whose events are stored: {outcomes}"
        )


# -- 4. a store-wide failure (not a collision) is retried save by save, each paying the timeout ----
class TestAStoreWideFailure:
    def test_a_locked_sqlite_file_costs_one_timeout_per_save_of_the_group(self, store_env):
        import sqlite3

        if store_env.get("PERSISTENCE_MODULE", "").find("sqlite") < 0 and not any(
            k.endswith("SQLITE_DBNAME") for k in store_env
        ):
            pytest.skip("SQLite only")
        env = {k: ("1" if k.endswith("SQLITE_LOCK_TIMEOUT") else v) for k, v in store_env.items()}
        app = Tracker(env=env)
        try:
            app.register_partner("fabrikam", "Fabrikam CSP", "europe")
            mids = opened(app, 6)
            db = next(v for k, v in env.items() if k.endswith("SQLITE_DBNAME"))
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            started = time.monotonic()
            outcomes = concurrently(app, [note(app, mid, "x") for mid in mids])
            took = time.monotonic() - started
            other.rollback()
            print("outcomes", [type(o).__name__ for o in outcomes], "took", round(took, 1))
            # Alone, each save would wait for the lock (1 s) once, in parallel: ~1 s in all.
            # Grouped: 1 s for the group, then 1 s for each save alone, one after another.
            assert took < 2.5, f"{took:.1f}s for 6 saves: the fallback paid one timeout per save"
        finally:
            app.close()
