"""The in-process projector's view writes on SQLite take a turn among the tracker's writers
(the group committer's turn, domain/group_commit.py): appends and view batches queue in this
process instead of sleeping in SQLite's busy handler behind each other."""

from __future__ import annotations

import threading

import pytest

from projections import ReadSide
from projections.views import SQLiteViews


def test_a_view_write_waits_for_the_trackers_writers(tracker, store_env):
    read_side = ReadSide(tracker, store_env)
    try:
        if not isinstance(read_side.view, SQLiteViews):
            pytest.skip("PostgreSQL takes its own locks: no turn to share")
        wrote = threading.Event()

        def write() -> None:
            with read_side.view.write():
                wrote.set()

        with tracker.commits.turn():  # as a save of the tracker holds it
            writer = threading.Thread(target=write)
            writer.start()
            assert not wrote.wait(0.3)  # queued behind the tracker's writer
        assert wrote.wait(5)
        writer.join(5)
    finally:
        read_side.close()
