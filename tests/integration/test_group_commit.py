"""Group commit on a real store (SQLite and PostgreSQL): saves that queue while another commits
go to the store in one transaction, and each still gets its own outcome.

Each spec holds the committer's turn while its writers queue, so the grouping is certain, not a
matter of timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from api.settings import Settings
from domain.application import Recorded, Tracker
from domain.commands import Command
from domain.errors import VersionConflict
from projections import ReadSide
from projections.integrity import verify_store
from tests.factories import ADMIN, SALES, decided, record, start

WRITERS = 8


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    return tracker


def opened(app: Tracker, count: int) -> list[UUID]:
    return [
        start(
            app,
            SALES,
            partner_id="fabrikam",
            tenant_id=f"tenant{i}.onmicrosoft.com",
            customer_name=f"Customer {i}",
            customer_region="europe",
            channel="direct",
        ).migration.id
        for i in range(count)
    ]


@contextmanager
def queued_behind_a_busy_committer(app: Tracker, writers: int) -> Iterator[None]:
    """Hold the committer's turn until `writers` saves are queued, then let them go."""
    with app.commits.turn():
        yield
        deadline = time.monotonic() + 10
        while app.commits.queued < writers:
            assert time.monotonic() < deadline, f"only {app.commits.queued} saves queued"
            time.sleep(0.005)


def concurrently(
    app: Tracker, jobs: list[Callable[[], Any]], saves: int | None = None
) -> list[Any]:
    """Run each job in its own thread while the committer is busy until `saves` (default: one
    per job) are queued; their outcomes in order."""
    outcomes: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            outcomes[i] = jobs[i]()
        except Exception as error:  # each job's own outcome, refusals included
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    with queued_behind_a_busy_committer(app, len(jobs) if saves is None else saves):
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def note(app: Tracker, mid: UUID, text: str) -> Callable[[], Recorded]:
    return lambda: record(app, "note_added", mid, ADMIN, text=text)


class TestGivenWritersOfDifferentMigrations:
    def test_their_saves_are_committed_in_one_transaction_each_with_its_own_result(self, app):
        mids = opened(app, WRITERS)
        before = app.commits.stats.transactions
        outcomes = concurrently(app, [note(app, mid, f"note {i}") for i, mid in enumerate(mids)])
        assert app.commits.stats.transactions == before + 1
        assert app.commits.stats.sizes.get(WRITERS) == 1
        for mid, outcome in zip(mids, outcomes, strict=True):
            assert isinstance(outcome, Recorded), outcome
            assert outcome.migration.id == mid
            assert outcome.migration.version == 2
            assert [e.text for e in app.history(mid)[1:]] == [f"note {mids.index(mid)}"]

    def test_the_log_holds_each_save_whole_and_in_order_without_gaps(self, app):
        mids = opened(app, WRITERS)
        head = app.recorder.max_notification_id() or 0
        steps = [(ADMIN, Command("note_added", {"text": f"{n}"})) for n in range(3)]
        outcomes = concurrently(app, [lambda mid=mid: app.execute_many(mid, steps) for mid in mids])
        assert all(isinstance(o, Recorded) for o in outcomes), outcomes
        log = app.recorder.select_notifications(head + 1, limit=1000)
        assert [n.id for n in log] == list(range(head + 1, head + 1 + 3 * WRITERS))
        # Each migration's three events sit together, versions 2, 3, 4.
        runs = [log[i : i + 3] for i in range(0, len(log), 3)]
        for run in runs:
            assert len({n.originator_id for n in run}) == 1
            assert [n.originator_version for n in run] == [2, 3, 4]
        assert {run[0].originator_id for run in runs} == set(mids)

    def test_stream_links_verify_and_the_views_equal_a_rebuild_after_grouped_saves(
        self, app, store_env
    ):
        mids = opened(app, WRITERS)
        concurrently(app, [note(app, mid, "grouped") for mid in mids])
        concurrently(app, [note(app, mid, "grouped again") for mid in mids])
        report = verify_store(app, None, None)
        # Nothing is signed here (no read side): every other check passes, every event linked.
        assert [f["check"] for f in report["failures"]] == ["signed_head"], report["failures"]
        assert report["events_verified"] == report["events_in_store"]
        assert report["events_linked"] == 3 * WRITERS  # every migration event
        read_side = ReadSide(app, store_env)
        try:
            read_side.catch_up()
            projected = read_side.queries.audit(limit=500)[0]
            read_side.rebuild()
            assert read_side.queries.audit(limit=500)[0] == projected
            assert read_side.queries.verify()["ok"] is True
        finally:
            read_side.close()


class TestWhenOneSaveOfAGroupCollides:
    def test_it_alone_is_refused_and_the_others_land(self, app):
        mids = opened(app, WRITERS)
        # A stale copy of the first migration: another writer stores version 2 first.
        stale = app.get(mids[0])
        decided(stale, ADMIN, "note_added", text="stale")
        record(app, "note_added", mids[0], ADMIN, text="first")
        jobs: list[Callable[[], Any]] = [lambda: app._save(stale)]
        jobs += [note(app, mid, "lands") for mid in mids[1:]]
        outcomes = concurrently(app, jobs)
        assert isinstance(outcomes[0], VersionConflict)
        assert all(isinstance(o, Recorded) for o in outcomes[1:]), outcomes
        assert [app.get(mid).version for mid in mids] == [2] * WRITERS
        assert [e.text for e in app.history(mids[0])[1:]] == ["first"]
        # The combined insert was refused as a whole, then each save went on its own.
        assert app.commits.stats.sizes.get(WRITERS) is None

    def test_a_refused_command_stores_nothing_and_does_not_hold_up_the_group(self, app):
        mids = opened(app, WRITERS)
        before = app.recorder.max_notification_id()
        refused = lambda: record(app, "note_added", mids[0], ADMIN, text="")  # noqa: E731
        jobs = [refused] + [note(app, m, "x") for m in mids[1:]]
        outcomes = concurrently(app, jobs, saves=WRITERS - 1)
        assert getattr(outcomes[0], "code", None) is not None, outcomes[0]
        assert all(isinstance(o, Recorded) for o in outcomes[1:])
        assert app.recorder.max_notification_id() == (before or 0) + WRITERS - 1


def capped(events: int) -> dict[str, str]:
    """What `CSP_TRACKER_GROUP_COMMIT_MAX_EVENTS=<events>` puts in the Tracker's env."""
    env = Settings(group_commit_max_events=events).eventsourcing_env()
    return {k: v for k, v in env.items() if k.endswith("GROUP_COMMIT_MAX_EVENTS")}


class TestTheCap:
    def test_at_most_the_setting_s_events_share_a_transaction(self, store_env):
        # CSP_TRACKER_GROUP_COMMIT_MAX_EVENTS=3: eight queued saves of one event go 3, 3, 2.
        app = Tracker(env={**store_env, **capped(3)})
        try:
            app.register_partner("fabrikam", "Fabrikam CSP", "europe")
            mids = opened(app, WRITERS)
            before = dict(app.commits.stats.sizes)
            outcomes = concurrently(app, [note(app, mid, "capped") for mid in mids])
            assert all(isinstance(o, Recorded) for o in outcomes), outcomes
            grown = {k: v - before.get(k, 0) for k, v in app.commits.stats.sizes.items()}
            assert {k: v for k, v in grown.items() if v} == {3: 2, 2: 1}
        finally:
            app.close()

    def test_a_cap_of_one_commits_every_save_alone(self, store_env):
        app = Tracker(env={**store_env, **capped(1)})
        try:
            app.register_partner("fabrikam", "Fabrikam CSP", "europe")
            mids = opened(app, 4)
            before = app.commits.stats.transactions
            concurrently(app, [note(app, mid, "alone") for mid in mids])
            assert app.commits.stats.transactions == before + 4
        finally:
            app.close()

    def test_the_setting_is_refused_outside_1_to_10000(self):
        for wrong in (0, 10_001):
            with pytest.raises(ValidationError, match="group_commit_max_events"):
                Settings(group_commit_max_events=wrong)


class TestAnotherWriterTakesATurn:
    def test_saves_queued_before_it_go_first_and_those_after_it_go_together_after(self, app):
        # The in-process projector takes the committer's turn for its view writes (SQLite).
        mids = opened(app, 6)
        before = dict(app.commits.stats.sizes)
        head = app.recorder.max_notification_id() or 0
        seen: list[int | None] = []
        first: list[Any] = []
        later: list[Any] = []

        def projector() -> None:
            with app.commits.turn():
                seen.append(app.recorder.max_notification_id())

        def save(mid: UUID, into: list[Any]) -> threading.Thread:
            thread = threading.Thread(target=lambda: into.append(note(app, mid, "n")()))
            thread.start()
            return thread

        def until(count: int) -> None:
            deadline = time.monotonic() + 10
            while len(app.commits._queue) < count:
                assert time.monotonic() < deadline
                time.sleep(0.005)

        threads = []
        with app.commits.turn():
            threads += [save(mid, first) for mid in mids[:3]]
            until(3)
            threads.append(threading.Thread(target=projector))
            threads[-1].start()
            until(4)
            threads += [save(mid, later) for mid in mids[3:]]
            until(7)
        for thread in threads:
            thread.join(timeout=30)
        assert seen == [head + 3]  # the first three were stored before its turn, no more
        assert len(first + later) == 6 and all(isinstance(o, Recorded) for o in first + later)
        grown = {k: v - before.get(k, 0) for k, v in app.commits.stats.sizes.items()}
        assert {k: v for k, v in grown.items() if v} == {3: 2}
