"""One lock per key, made when first wanted and dropped when no one holds or waits for it.

The Tracker's writers of one migration decide and save one at a time in this process. A fixed
set of striped locks would also serialise writers of *different* migrations that share a stripe,
and a writer holds its lock while its save waits to be group-committed (domain.group_commit), so
a shared stripe would keep those writers out of each other's group.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Iterator
from contextlib import ExitStack, contextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, _Entry] = {}

    @contextmanager
    def holding(self, keys: Iterable[Hashable]) -> Iterator[None]:
        """Hold the lock of every key (re-entrant), taken in sorted order so that two holders
        of overlapping keys never wait for each other."""
        with ExitStack() as held:
            for key in sorted(set(keys), key=repr):
                held.enter_context(self._one(key))
            yield

    @contextmanager
    def _one(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = _Entry()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]


class _Entry:
    """A key's lock, and how many threads hold or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users = 0
