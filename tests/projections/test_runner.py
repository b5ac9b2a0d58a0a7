"""Running the projector: in-process follow, rebuild, lag, and two runners at once."""

from __future__ import annotations

import threading

import pytest

from bench.generate import generate
from projections import ReadSide
from tests.factories import ADMIN, record
from tests.projections.conftest import NOW, request


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
