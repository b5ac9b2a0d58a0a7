"""The read side's facade: build the views next to the tracker's store, run the projector,
answer queries. The API and the CLI use only this."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment

from projections.integrity import verify_store
from projections.ledger import LedgerView
from projections.projector import HeadPolicy, ReadModelProjection
from projections.queries import Queries
from projections.runner import Runner
from projections.schema import VIEWS
from projections.views import PostgresViews, SQLiteViews, ViewStore

VIEW_NAMES = tuple(VIEWS)


def construct_views(env: Mapping[str, str]) -> ViewStore:
    """The view recorder for the store `env` selects, configured as the tracker is (keys may be
    prefixed CSP_TRACKER_VIEWS_ to differ, e.g. a separate pool size)."""
    merged = {**os.environ, **env}
    factory = InfrastructureFactory.construct(Environment(ReadModelProjection.name, merged))
    if isinstance(factory, SQLiteFactory):
        # The library's SQLite factory is annotated to return its base recorder class.
        return cast(SQLiteViews, factory.tracking_recorder(SQLiteViews))
    if isinstance(factory, PostgresFactory):
        return factory.tracking_recorder(PostgresViews)
    msg = f"the read side needs SQLite or PostgreSQL, not {type(factory).__module__}"
    raise ValueError(msg)


class ReadSide:
    """Views of one Tracker. `start()` for in-process use, `run_forever()` as its own process."""

    def __init__(
        self,
        tracker: Any,
        env: Mapping[str, str],
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        heads: HeadPolicy | None = None,
    ) -> None:
        self.tracker = tracker
        self.view = construct_views(env)
        self.view.ensure_tracking_row(tracker.name)
        self.view.ensure_schema(tracker.name)
        self.runner = Runner(
            tracker, self.view, batch_size=batch_size, poll_interval=poll_interval, heads=heads
        )
        self.ledger = LedgerView(self.view).reader()
        self.queries = Queries(self.view, tracker)
        self._on_saved: Callable[[Any], None] = lambda _recordings: self.runner.wake.set()

    def start(self) -> None:
        """Catch up, then follow, in a background thread woken by each local save."""
        if self._on_saved not in self.tracker.on_saved:
            self.tracker.on_saved.append(self._on_saved)
        self.runner.start()

    def stop(self) -> None:
        if self._on_saved in self.tracker.on_saved:
            self.tracker.on_saved.remove(self._on_saved)
        self.runner.stop()

    def close(self) -> None:
        self.stop()
        self.view.datastore.close()  # type: ignore[attr-defined]

    def run_forever(self) -> None:
        """Projector as its own process: follow until SIGTERM/SIGINT. A batch another runner
        applied first is skipped cleanly (tracking conflict), and the loop resumes after it."""

        def stop(_signum: int, _frame: Any) -> None:
            self.runner.stopping.set()
            self.runner.wake.set()

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, stop)
        self.start()
        try:
            while not self.runner.stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def catch_up(self) -> int:
        """Process everything recorded so far, in the calling thread."""
        return self.runner.catch_up()

    def wait(self, position: int | None = None, timeout: float = 5.0) -> None:
        self.runner.wait(position, timeout)

    def lag(self) -> dict[str, dict[str, int]]:
        # One projection writes all views in one transaction: they share one position.
        position, head = self.runner.position(), self.runner.head()
        return {
            name: {"position": position, "head": head, "lag": max(head - position, 0)}
            for name in VIEW_NAMES
        }

    def verify(self, public_key: Any, against: Any = None, progress: Any = None) -> dict:
        """The store, the ledger and its heads, the snapshots, then the views (integrity.py)."""
        return verify_store(self.tracker, self, public_key, against, progress)

    def issue_head(self, *, force: bool = False) -> Any:
        """Catch up, then sign a head for the ledger now if one is due; with `force`, make sure
        one covers the whole ledger. The head issued (with `force`: the latest), or None."""
        self.catch_up()
        issued = self.runner.projection.issue_head(force=force)
        return issued if issued is not None or not force else self.ledger.latest_head()

    def rebuild(
        self, view: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> dict:
        return self.runner.rebuild(view, progress)
