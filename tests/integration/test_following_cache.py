"""The aggregate cache follows the notification log (domain.repository), on both stores.

Given migrations cached in this process, when this process or another one stores events, then
the next command here decides on everything stored before it began, and the store is asked only
for its head unless another writer stored something (or an insert rolled back, leaving a gap).
Loads, saves and looks that overlap in this process's threads never leave an older aggregate
in the cache than the store holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from api.deps import KeyCache
from domain import repository as following
from domain.access import (
    ApiKey,
    authenticate,
    end_sessions,
    issue_key,
    revoke_key,
    token_hash,
)
from domain.application import Tracker, _fold
from domain.commands import Command
from domain.errors import DomainError
from domain.migration import Migration
from tests.factories import ADMIN, record
from tests.integration.test_tracker import request


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    return tracker


@pytest.fixture
def other(app: Tracker, store_env: dict[str, str]) -> Iterator[Tracker]:
    """Another process's tracker on the same store."""
    tracker = Tracker(env=store_env)
    yield tracker
    tracker.close()


def note(app: Tracker, mid, text: str = "note"):
    return record(app, "note_added", mid, ADMIN, text=text)


def stored(app: Tracker, mid) -> Migration:
    """The migration folded from its stored events alone."""
    return _fold(None, app.events.get(mid))


def cached(app: Tracker, mid) -> Any:
    assert app.repository.cache
    try:
        return app.repository.cache.get(mid)
    except KeyError:
        return None


@pytest.fixture
def reads(app: Tracker, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store reads the command path makes: "head", "log", "events" (an aggregate's)."""
    calls: list[str] = []
    recorder = app.recorder
    for name, label in (
        ("max_notification_id", "head"),
        ("select_notifications", "log"),
        ("select_events", "events"),
    ):
        real = getattr(recorder, name)

        def spy(*a: Any, _real: Any = real, _label: str = label, **k: Any) -> Any:
            calls.append(_label)
            return _real(*a, **k)

        monkeypatch.setattr(recorder, name, spy)
    return calls


class TestGivenMigrationsThisProcessSaved:
    def test_a_command_reads_only_the_head(self, app, reads):
        mid = request(app)
        note(app, mid)
        reads.clear()
        done = note(app, mid, "again")
        assert reads == ["head"]
        assert done.migration.version == 3
        assert app.repository.looks == 0

    def test_a_batch_of_commands_reads_the_head_once(self, app, reads):
        mids = [request(app, tenant=f"t{i}.onmicrosoft.com") for i in range(3)]
        reads.clear()
        outcomes = app.execute_each(
            [(mid, ADMIN, Command("note_added", {"text": "n"})) for mid in mids]
        )
        assert all(isinstance(o, list) for o in outcomes)
        assert reads == ["head"]

    def test_a_caller_changing_the_migration_it_got_back_leaves_the_cache_alone(self, app):
        mid = request(app)
        note(app, mid).migration.state.notes = 99
        assert note(app, mid).migration.state.notes == 2

    def test_the_cache_holds_a_copy_of_what_was_saved(self, app):
        mid = request(app)
        done = note(app, mid)
        assert cached(app, mid) is not done.migration
        assert cached(app, mid).state == done.migration.state
        assert cached(app, mid)._chain_head == stored(app, mid)._chain_head


class TestGivenAnotherProcessStoredEventsOfACachedMigration:
    @pytest.fixture
    def mid(self, app, other):
        mid = request(app)
        note(app, mid, "here")
        note(other, mid, "elsewhere")
        return mid

    def test_the_next_command_decides_on_them(self, app, mid, reads):
        done = note(app, mid, "here again")
        assert reads[:2] == ["head", "log"]  # their events from the log, in one read
        assert "events" not in reads  # not the migration's own events
        assert done.migration.version == 4
        assert done.migration.state == stored(app, mid).state
        assert done.migration._chain_head == stored(app, mid)._chain_head

    def test_a_read_sees_them(self, app, mid):
        assert app.get(mid).state.notes == 2
        assert app.get(mid).state == stored(app, mid).state

    def test_an_if_match_on_their_version_is_met(self, app, mid):
        done = record(app, "note_added", mid, ADMIN, expected_version=3, text="on theirs")
        assert done.migration.version == 4

    def test_events_that_do_not_follow_on_evict_it(self, app, mid):
        # This process's copy at 1: the log's next event of it (3) does not follow on.
        app.repository.cache.put(mid, _fold(None, app.events.get(mid, lte=1)))
        app.repository.follow()
        assert cached(app, mid) is None
        assert app.get(mid).version == 3


class TestGivenAStaleCopyInTheCache:
    """What the log cannot tell: a copy cached although the store moved past it (another
    writer's save between this process's look at the head and its command)."""

    @pytest.fixture
    def mid(self, app, other):
        mid = request(app)
        note(app, mid)
        stale = cached(app, mid)
        note(other, mid, "elsewhere")
        app.repository.follow()
        app.repository.cache.put(mid, stale)  # as if put after the look
        return mid

    def test_a_command_without_if_match_is_decided_again_on_the_store(self, app, mid):
        done = note(app, mid, "here")
        assert done.migration.version == 4
        assert stored(app, mid).state.notes == 3

    def test_a_batch_collides_then_records_each_alone(self, app, mid):
        [outcome] = app.execute_each([(mid, ADMIN, Command("note_added", {"text": "b"}))])
        assert isinstance(outcome, list)
        assert stored(app, mid).version == 4


class TestGivenALookDuringALoad:
    def test_a_get_that_overlaps_a_change_to_its_aggregate_leaves_it_out(
        self, app, other, monkeypatch
    ):
        mid = request(app)
        app.repository.evict(mid)
        reconstruct = app.repository._reconstruct_aggregate
        calls = []

        def overtaken(*a: Any, **k: Any) -> Any:
            loaded = reconstruct(*a, **k)  # the store as it was
            if not calls:
                note(other, mid, "meanwhile")
                app.repository.follow()  # the look finds it not cached yet
            calls.append(loaded.version)
            return loaded

        monkeypatch.setattr(app.repository, "_reconstruct_aggregate", overtaken)
        assert app.get(mid).version == 1  # as the store was when the read began, not cached
        assert app.get(mid).version == 2
        assert calls == [1, 2]

    def test_a_save_that_overlaps_a_change_to_its_aggregate_leaves_it_out(
        self, app, other, monkeypatch
    ):
        mid = request(app)
        noted = app.repository.noted

        def overtaken(recordings: Any) -> None:
            if any(r.notification.originator_id == mid for r in recordings):
                monkeypatch.setattr(app.repository, "noted", noted)
                note(other, mid, "right after")
                app.repository.follow()  # our save's event is not noted yet
            noted(recordings)

        monkeypatch.setattr(app.repository, "noted", overtaken)
        note(app, mid, "here")
        assert cached(app, mid) is None
        assert app.get(mid).version == 3


class TestGivenAnotherProcessWroteALot:
    def test_the_cache_is_emptied_instead_of_followed(self, app, other, monkeypatch, reads):
        monkeypatch.setattr(following, "CLEAR_ABOVE", 2)
        mid = request(app)
        for i in range(3):
            note(other, mid, f"n{i}")
        reads.clear()
        assert app.get(mid).version == 4
        assert "log" not in reads


class TestGivenACommandRefused:
    def test_the_cached_copy_is_untouched(self, app):
        mid = request(app)
        before = cached(app, mid).state
        with pytest.raises(DomainError):
            record(app, "note_added", mid, ADMIN, expected_version=7, text="late")
        assert cached(app, mid).state == before


def _before_load_ends(app: Tracker, monkeypatch, meanwhile) -> None:
    """Run `meanwhile` in another thread once, after this thread's next load from the store read
    the aggregate and before it is cached."""
    reconstruct = app.repository._reconstruct_aggregate
    armed = [True]

    def overtaken(*a: Any, **k: Any) -> Any:
        loaded = reconstruct(*a, **k)
        if armed and threading.current_thread() is threading.main_thread():
            armed.clear()
            writer = threading.Thread(target=meanwhile)
            writer.start()
            writer.join()
        return loaded

    monkeypatch.setattr(app.repository, "_reconstruct_aggregate", overtaken)


class TestGivenThreadsOfThisProcess:
    """A read (a GET's thread) that loads a migration while the writer thread saves it."""

    @pytest.fixture
    def mid(self, app, monkeypatch):
        mid = request(app)
        note(app, mid)
        app.repository.evict(mid)  # not cached: the read loads it
        _before_load_ends(app, monkeypatch, lambda: note(app, mid, "writer"))
        return mid

    def test_the_older_load_does_not_replace_the_save(self, app, mid):
        assert app.get(mid).version == 2  # as the store was when the read began
        assert cached(app, mid).state == stored(app, mid).state
        assert app.get(mid).version == 3

    def test_an_if_match_on_the_saved_version_is_met(self, app, mid):
        app.get(mid)
        done = record(app, "note_added", mid, ADMIN, expected_version=3, text="on it")
        assert done.migration.version == 4

    def test_a_key_signed_out_meanwhile_stays_signed_out(self, app, monkeypatch):
        token = issue_key(app, "k1", "account_admin", "fabrikam").token
        app.repository.evict(ApiKey.key(token_hash(token)))
        _before_load_ends(app, monkeypatch, lambda: end_sessions(app, token, app.clock()))
        authenticate(app, token)
        key = authenticate(app, token)
        assert key is not None and key.sessions_ended_at is not None


def tracker_with_cache(store_env: dict[str, str], size: str) -> Iterator[Tracker]:
    """A tracker whose aggregate cache holds `size` aggregates ("": none)."""
    tracker = Tracker(env={**store_env, "AGGREGATE_CACHE_MAXSIZE": size})
    tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
    yield tracker
    tracker.close()


def crowd_out(app: Tracker, prefix: str) -> None:
    """Other traffic: more new migrations than a cache of 3 holds."""
    for i in range(4):
        request(app, tenant=f"{prefix}{i}.onmicrosoft.com")


class TestGivenTheSavedCopyLeavesTheCacheDuringALoad:
    """A read loads a migration while the writer thread saves it, and the save's copy leaves
    the cache before the load ends: pushed out by other traffic, or dropped (a failed save)."""

    @pytest.fixture
    def small(self, store_env):
        yield from tracker_with_cache(store_env, "3")

    @pytest.mark.parametrize("leaves", ["pushed out by other traffic", "dropped"])
    def test_the_older_load_is_not_cached(self, small, monkeypatch, leaves):
        mid = request(small)
        note(small, mid)
        small.repository.evict(mid)

        def writer() -> None:
            note(small, mid, "writer")
            if leaves == "dropped":  # as a failed save drops what it touched
                small.repository.evict([mid])
            else:
                crowd_out(small, "x")

        _before_load_ends(small, monkeypatch, writer)
        small.get(mid)
        assert small.get(mid).version == 3

    def test_a_key_signed_out_meanwhile_stays_signed_out(self, small, monkeypatch):
        token = issue_key(small, "k1", "account_admin", "fabrikam").token
        small.repository.evict(ApiKey.key(token_hash(token)))

        def writer() -> None:
            end_sessions(small, token, small.clock())
            crowd_out(small, "y")

        _before_load_ends(small, monkeypatch, writer)
        authenticate(small, token)
        key = authenticate(small, token)
        assert key is not None and key.sessions_ended_at is not None


class TestGivenASaveOvertakenByALook:
    def test_the_save_leaves_it_out_and_the_next_get_reads_the_store(self, app, other, monkeypatch):
        mid = request(app)
        note(app, mid)
        keep = app.repository._keep

        def overtaken(aggregate_id: Any, *a: Any, **k: Any) -> Any:
            if aggregate_id == mid and k.get("evict"):
                monkeypatch.setattr(app.repository, "_keep", keep)
                note(other, mid, "right after")
                looking = threading.Thread(target=app.repository.follow)  # a GET's look
                looking.start()
                looking.join()
            return keep(aggregate_id, *a, **k)

        monkeypatch.setattr(app.repository, "_keep", overtaken)
        note(app, mid, "here")
        assert stored(app, mid).version == 4
        assert app.get(mid).version == 4


class TestGivenTheLogCannotBeReadForAMoment:
    @pytest.fixture
    def blip(self, app, monkeypatch):
        """The repository's next read of the log fails (a dropped connection)."""
        read = app.recorder.select_notifications
        failed: list[bool] = []

        def flaky(*a: Any, **k: Any) -> Any:
            if not failed and not k.get("topics"):
                failed.append(True)
                raise OperationalError("connection dropped")
            return read(*a, **k)

        monkeypatch.setattr(app.recorder, "select_notifications", flaky)
        return failed

    def test_the_next_look_reads_the_same_notifications(self, app, other, blip):
        mid = request(app)
        note(app, mid)
        note(other, mid, "elsewhere")
        with pytest.raises(OperationalError):
            app.get(mid)
        assert app.get(mid).version == 3

    def test_a_key_revoked_by_another_process_stays_revoked(self, app, other, blip):
        keys = KeyCache()
        token = issue_key(app, "k1", "account_admin", "fabrikam").token
        assert keys.get(app, token) is not None
        revoke_key(other, "k1")  # `csp-tracker keys revoke`
        with pytest.raises(OperationalError):
            keys.get(app, token)
        assert keys.get(app, token) is None


class TestGivenNoCache:
    @pytest.fixture
    def uncached(self, store_env):
        yield from tracker_with_cache(store_env, "")

    def test_a_batch_after_another_writer_decides_on_the_store(
        self, uncached, store_env, monkeypatch
    ):
        monkeypatch.setattr(following, "CLEAR_ABOVE", 1)
        other = Tracker(env=store_env)
        try:
            mid = request(uncached)
            uncached.execute_each([(mid, ADMIN, Command("note_added", {"text": "a"}))])
            for i in range(3):
                note(other, mid, f"elsewhere {i}")
            [outcome] = uncached.execute_each([(mid, ADMIN, Command("note_added", {"text": "b"}))])
        finally:
            other.close()
        assert isinstance(outcome, list) and outcome[0].originator_version == 6
        assert uncached.repository.cache is None


def test_postgres_database_functions_are_refused(store_env):
    """They insert without the table lock that keeps the log in the order events committed."""
    if store_env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        pytest.skip("PostgreSQL only")
    with pytest.raises(ValueError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
        Tracker(env={**store_env, "POSTGRES_ENABLE_DB_FUNCTIONS": "y"})


def test_without_a_cache_a_key_revoked_elsewhere_is_refused_at_once(store_env):
    """Nothing is followed without a cache: the key cache reads the key again every time."""
    gen = tracker_with_cache(store_env, "")
    uncached = next(gen)
    other = Tracker(env=store_env)
    try:
        keys = KeyCache()
        token = issue_key(uncached, "k1", "account_admin", "fabrikam").token
        assert keys.get(uncached, token) is not None
        revoke_key(other, "k1")
        assert keys.get(uncached, token) is None
    finally:
        other.close()
        gen.close()
