"""Snapshots on the command path, on both stores (the cache itself: test_following_cache.py).

Given a migration one event before its snapshot, when a save ends at the snapshot's version,
then the snapshot is taken from the saved migration in memory (Tracker._take_snapshots) and
equals the fold of the stored events; a save that passes it mid-way uses the library's path.
"""

from __future__ import annotations

import pytest

from domain.application import SNAPSHOT_INTERVAL, Tracker, _fold
from domain.commands import Command
from domain.migration import Migration
from tests.factories import ADMIN, record
from tests.integration.test_tracker import request


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    return tracker


def note(app: Tracker, mid, text: str = "note"):
    return record(app, "note_added", mid, ADMIN, text=text)


def replayed(app: Tracker, mid, version: int) -> Migration:
    """The migration folded from its stored events alone, no snapshot and no cache."""
    return _fold(None, app.events.get(mid, lte=version))


class TestGivenAMigrationOneEventBeforeASnapshot:
    @pytest.fixture
    def mid(self, app):
        mid = request(app)
        for i in range(SNAPSHOT_INTERVAL - 2):
            note(app, mid, f"update {i}")
        assert app.get(mid).version == SNAPSHOT_INTERVAL - 1
        return mid

    @pytest.fixture
    def reloads(self, app, monkeypatch):
        """The library's take_snapshot: it reads the migration back from the store."""
        calls = []
        take = app.take_snapshot
        monkeypatch.setattr(
            app, "take_snapshot", lambda *a, **k: calls.append(k.get("version")) or take(*a, **k)
        )
        return calls

    def test_a_save_ending_at_the_snapshot_takes_it_from_memory(self, app, mid, reloads):
        note(app, mid, "the hundredth")
        assert reloads == []
        [snapshot] = list(app.snapshots.get(mid))
        assert snapshot.originator_version == SNAPSHOT_INTERVAL
        expected = Migration.Snapshot.take(replayed(app, mid, SNAPSHOT_INTERVAL))
        assert snapshot.state == expected.state  # its times included (not when it was taken)

    def test_a_save_passing_the_snapshot_takes_it_as_the_library_does(self, app, mid, reloads):
        steps = [(ADMIN, Command("note_added", {"text": t})) for t in ("100th", "101st")]
        app.execute_many(mid, steps)
        assert reloads == [SNAPSHOT_INTERVAL]
        [snapshot] = list(app.snapshots.get(mid))
        assert snapshot.originator_version == SNAPSHOT_INTERVAL
        expected = Migration.Snapshot.take(replayed(app, mid, SNAPSHOT_INTERVAL))
        assert snapshot.state == expected.state

    def test_loading_through_the_snapshot_gives_the_stored_state(self, app, mid, store_env):
        note(app, mid, "the hundredth")
        note(app, mid, "one more")
        assert [s.originator_version for s in app.snapshots.get(mid)] == [SNAPSHOT_INTERVAL]
        fresh = Tracker(env={**store_env, "AGGREGATE_CACHE_MAXSIZE": ""})
        try:
            assert fresh.repository.cache is None
            assert fresh.get(mid).state == replayed(app, mid, SNAPSHOT_INTERVAL + 1).state
        finally:
            fresh.close()
