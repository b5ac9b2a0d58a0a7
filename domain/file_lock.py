"""The writers' lock of a SQLite file, shared by every process that writes it.

SQLite takes one writer at a time. Within a process, writers already take turns (the group
committer's turn: domain.group_commit). Between processes (several API processes, or a
`csp-tracker project` process beside them), a writer that finds the file locked sleeps in
SQLite's busy handler: 1, 2, 5, 10, 15, 20, 25 ms... between tries, whenever the lock is
released meanwhile. So the holder of a process's turn also takes this lock, an exclusive
`flock` on a file beside the database, for each transaction: a waiting process then sleeps in
the kernel and wakes as soon as the lock is released. SQLite's own locking is unchanged: a
writer that does not take this lock (an older version, the sqlite3 shell) is still kept out
by SQLite, and meets the busy handler as before.

There is no timeout: a writer waits for as long as another process holds its turn (a long
upgrade, say), where SQLite's busy handler gave up after `SQLITE_LOCK_TIMEOUT` seconds and
failed the write. Within a process, queued saves never had a timeout either.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FileLock:
    """An exclusive lock on `path` (created if missing), for one holder at a time in this
    process: the group committer's turn already admits one, and a thread lock keeps it so."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._local = threading.Lock()
        self._pid = os.getpid()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self._pid != os.getpid():
            # A forked child shares its parent's open file, hence its flock: open its own
            # (and a thread lock of its own: the parent's may have been held at the fork).
            self._pid, self._fd, self._local = os.getpid(), None, threading.Lock()
        with self._local:
            if self._fd is None:
                # Readable and writable as the process's umask allows, like SQLite's own
                # -wal and -shm files: processes of other users that share the database
                # (group-writable) share this lock too.
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._local:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def sqlite_writers_lock(database: str) -> FileLock | None:
    """The writers' lock of a SQLite database file (`<file>-writers` beside it); None for an
    in-memory database, which no other process can open."""
    if not database or ":memory:" in database or "mode=memory" in database:
        return None
    if database.startswith("file:"):  # a URI: its path, without the query
        database = database[len("file:") :].split("?", 1)[0]
    return FileLock(Path(f"{database}-writers"))
