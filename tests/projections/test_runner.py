"""Running the projector: in-process follow, rebuild, lag, and two runners at once."""

from __future__ import annotations

import threading
from uuid import UUID

import pytest

from bench.generate import generate
from projections import ReadSide
from projections.projector import StateCache
from projections.runner import Runner
from projections.schema import VIEWS
from tests.factories import ADMIN, record
from tests.projections.conftest import NOW, record_original, request


class TestGivenAStartedReadSide:
    def test_a_save_is_visible_after_wait(self, app, read_side):
        read_side.start()
        mid = request(app)
        read_side.wait(timeout=5)
        assert read_side.queries.get_migration(str(mid), now=NOW)["version"] == 1
        record(app, "note_added", mid, ADMIN, text="more")
        read_side.wait(timeout=5)
        assert read_side.lag()["audit"]["lag"] == 0
        read_side.stop()

    def test_wait_times_out_when_nothing_runs(self, app, read_side):
        request(app)
        with pytest.raises(TimeoutError):
            read_side.wait(timeout=0.2)


class TestGivenProjectedViews:
    def test_rebuilding_all_views_gives_identical_tables(self, app, read_side):
        generate(app, 600)
        read_side.catch_up()
        before = read_side.view.dump(app.name)
        seen = []
        result = read_side.rebuild(progress=lambda done, total: seen.append((done, total)))

        assert read_side.view.dump(app.name) == before
        assert result["events"] == app.recorder.max_notification_id()
        assert result["events_per_second"] > 0
        assert seen[-1][0] == seen[-1][1]

    def test_a_rebuild_in_small_batches_with_a_small_state_cache_gives_identical_tables(
        self, app, read_side
    ):
        # Events of many migrations interleaved, batches smaller than a round of them, and a
        # cache of 3: most states are evicted and read back from the view.
        generate(app, 300)
        mids = [request(app, tenant=f"t{i}.onmicrosoft.com", name=f"T{i}") for i in range(12)]
        for i in range(4):
            for mid in mids:
                record_original(app, mid, f"orig-{i}", licenses=10 + i)
        read_side.catch_up()
        before = read_side.view.dump(app.name)
        read_side.runner.rebuild_batch_size = 37
        read_side.runner.state_cache_size = 3
        result = read_side.rebuild()

        assert read_side.view.dump(app.name) == before
        assert result["events"] == app.recorder.max_notification_id()

    def test_a_rebuild_overtaken_by_another_runner_finishes_as_a_catch_up(
        self, app, read_side, store_env
    ):
        generate(app, 600)
        read_side.catch_up()
        before = read_side.view.dump(app.name)
        other = ReadSide(app, store_env, batch_size=20)
        projection = read_side.runner.projection
        process_batch = projection.process_batch
        calls = []

        def overtaken(*args, **kwargs):
            calls.append(kwargs["expected"])
            if len(calls) == 2:
                other.runner.step()  # moves the position first: this batch conflicts
            return process_batch(*args, **kwargs)

        projection.process_batch = overtaken  # type: ignore[method-assign]
        read_side.runner.rebuild_batch_size = 50
        try:
            read_side.rebuild()
        finally:
            other.close()

        assert len(calls) > 2  # the second batch conflicted; the rest was a catch-up
        assert read_side.view.dump(app.name) == before

    def test_a_failed_batch_empties_the_state_cache(self, app, read_side):
        generate(app, 100)
        projection = read_side.runner.projection
        cache = StateCache()
        notifications = app.recorder.select_notifications(0, 1000)
        items = read_side.runner._migration_events(notifications)

        class Failing:
            def issue(self, *args):
                raise RuntimeError("after the views were written, before the commit")

        projection.heads = Failing()  # type: ignore[assignment]
        with pytest.raises(RuntimeError):
            projection.process_batch(
                items, expected=0, last=notifications[-1].id, raw=notifications, cache=cache
            )
        assert len(cache) == 0
        assert read_side.runner.position() == 0

    @pytest.mark.parametrize("view", ["migrations", "audit", "summary"])
    def test_rebuilding_one_view_gives_identical_tables(self, app, read_side, view):
        generate(app, 400)
        read_side.catch_up()
        before = read_side.view.dump(app.name)
        read_side.rebuild(view)
        assert read_side.view.dump(app.name) == before

    def test_rebuilding_an_unknown_view_is_refused(self, app, read_side):
        with pytest.raises(ValueError, match="unknown view"):
            read_side.rebuild("nope")


class TestGivenTwoRunnersOfTheSameViews:
    def test_racing_catch_ups_apply_each_event_once(self, app, read_side, store_env):
        generate(app, 1500)
        other = ReadSide(app, store_env, batch_size=70)  # different batch boundaries
        errors = []

        def run(side):
            try:
                side.catch_up()
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(s,)) for s in (read_side, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        raced = read_side.view.dump(app.name)
        other.close()

        assert errors == []
        read_side.rebuild()
        assert raced == read_side.view.dump(app.name)
        assert read_side.queries.verify()["ok"]


class TestFollowing:
    """The follow loop: a partial batch lingers, and states are kept between batches only
    while the position is the one they were kept at."""

    def test_a_partial_batch_lingers_before_the_next_one(self, app, read_side):
        # Given a follow loop whose steps read 3 (a partial batch), then a full batch, then
        # nothing; then it waits `linger` after the 3 only (a full batch goes straight on, and
        # nothing waits for a wake-up, which never comes here).
        runner = Runner(app, read_side.view, batch_size=1000, linger=0.25, poll_interval=0.01)
        sizes = iter([3, 1000, 0])
        waits: list[float] = []

        class Stopping(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                waits.append(timeout or 0.0)
                return False

        def step(*args, **kwargs):
            n = next(sizes, None)
            if n is None:
                runner.stopping.set()
                return 0
            return n

        runner.stopping = Stopping()
        runner.step = step  # type: ignore[method-assign]
        runner._heads_when_idle = lambda: None  # type: ignore[method-assign]
        runner.follow()
        assert waits == [0.25]

    def test_kept_states_are_used_at_the_position_they_were_kept_at(self, app, read_side):
        generate(app, 60)
        runner, cache = read_side.runner, StateCache()
        runner.step(size=20, cache=cache)
        assert cache.position == runner.position() and len(cache) > 0
        loaded: list[str] = []
        real = runner.projection._load

        def counting(c, ids):
            loaded.extend(ids)
            return real(c, ids)

        runner.projection._load = counting  # type: ignore[method-assign]
        kept = set(cache._states)
        runner.step(size=20, cache=cache)
        assert not kept & set(loaded)  # none of the kept states was read back

    def test_kept_states_are_dropped_when_the_position_moved_without_them(self, app, read_side):
        # Given states kept at a position, one of them wrong, when the views move on without
        # the cache (a rebuild, another runner) and the next batch comes: the kept states are
        # not used, and the views equal a rebuild.
        generate(app, 60)
        runner, cache = read_side.runner, StateCache()
        runner.step(size=20, cache=cache)
        mid, wrong = next(iter(cache._states.items()))
        wrong.customer_name = "Not what the events say"
        runner.catch_up()  # without the cache
        record(app, "note_added", UUID(mid), ADMIN, text="after the catch-up")
        runner.step(cache=cache)
        after = read_side.view.dump(app.name)
        read_side.rebuild()
        assert read_side.view.dump(app.name) == after
        assert "Not what the events say" not in repr(after)

    def test_cached_states_give_the_views_a_rebuild_gives(self, app, read_side):
        generate(app, 600, batch=20)
        runner = read_side.runner
        _catch_up_in(read_side, 7, None)
        without = read_side.view.dump(app.name)
        read_side.rebuild()
        rebuilt = read_side.view.dump(app.name)
        with read_side.view.write() as c:
            read_side.view.reset(c, app.name, sorted(VIEWS))
        runner._position = None
        cache = StateCache(size=5)  # tiny: evictions and hits both happen
        _catch_up_in(read_side, 7, cache)
        cached = read_side.view.dump(app.name)
        assert without == rebuilt
        assert cached == rebuilt


def _catch_up_in(read_side, size, cache):
    runner = read_side.runner
    while runner.step(size=size, cache=cache):
        pass
