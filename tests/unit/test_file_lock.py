"""The writers' lock of a SQLite file (domain.file_lock), shared between processes."""

from __future__ import annotations

import os
import threading
import time

from domain.application import Tracker
from domain.file_lock import FileLock, sqlite_writers_lock


def test_a_second_holder_waits_until_the_first_lets_go_then_gets_it_at_once(tmp_path):
    # Two locks on one path stand for two processes: flock locks belong to the open file.
    first, second = FileLock(tmp_path / "db-writers"), FileLock(tmp_path / "db-writers")
    got = threading.Event()

    def take() -> None:
        with second():
            got.set()

    with first():
        threading.Thread(target=take).start()
        assert not got.wait(0.2)
        released = time.monotonic()
    assert got.wait(5)
    assert time.monotonic() - released < 0.1  # woken, not polling
    first.close()
    second.close()


def test_a_forked_child_takes_the_lock_on_a_file_of_its_own(tmp_path):
    # A child of fork() shares its parent's open file: on it, the parent's flock would be its
    # own too. The child must wait while the parent holds the lock.
    lock = FileLock(tmp_path / "db-writers")
    with lock():
        pid = os.fork()
        if pid == 0:  # the child
            started = time.monotonic()
            with lock():
                waited = time.monotonic() - started
            os._exit(0 if waited >= 0.2 else 1)
        time.sleep(0.4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lock.close()


def test_a_database_file_has_one_beside_it_and_memory_none(tmp_path):
    lock = sqlite_writers_lock(str(tmp_path / "x.db"))
    assert lock is not None and lock.path == tmp_path / "x.db-writers"
    uri = sqlite_writers_lock(f"file:{tmp_path / 'y.db'}?cache=shared")
    assert uri is not None and uri.path == tmp_path / "y.db-writers"
    for name in (":memory:", "file::memory:?cache=shared", "file:z?mode=memory", ""):
        assert sqlite_writers_lock(name) is None


def test_a_tracker_on_a_sqlite_file_takes_it_for_each_transaction(store_env, monkeypatch):
    tracker = Tracker(env=store_env)
    try:
        lock = tracker.commits.store_lock
        if store_env["PERSISTENCE_MODULE"] != "eventsourcing.sqlite":
            assert not isinstance(lock, FileLock)
            return
        assert isinstance(lock, FileLock)
        taken = []
        original = FileLock.__call__

        def counted(self):
            taken.append(self.path)
            return original(self)

        monkeypatch.setattr(FileLock, "__call__", counted)
        tracker.register_partner("fabrikam", "Fabrikam CSP", "europe")
        with tracker.commits.turn():
            pass
        assert taken == [lock.path, lock.path]  # the save's transaction, then the turn
    finally:
        tracker.close()
