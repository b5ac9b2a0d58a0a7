"""The read side's facade: build the views next to the tracker's store, run the projector,
answer queries. The API and the CLI use only this.

Every process that runs a projector (`csp-tracker project`, or `serve` with projections on)
takes part in one election per schema (projections/election.py): one is active, the others
stand by and take over when it goes. Exactly-once does not depend on it (the tracking guard
does that); the election keeps N processes from doing the same work N times.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, cast

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment

from projections.election import (
    Election,
    PostgresElection,
    SoleProjector,
    ddl_lock,
    postgres_target,
)
from projections.integrity import verify_store
from projections.ledger import LedgerView
from projections.projector import HeadPolicy, ReadModelProjection
from projections.queries import Queries
from projections.runner import REBUILD_BATCH_SIZE, Runner
from projections.schema import VIEWS
from projections.views import PostgresViews, SQLiteViews, ViewStore

VIEW_NAMES = tuple(VIEWS)
log = logging.getLogger(__name__)


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


def startup_lock(env: Mapping[str, str], app_name: str) -> AbstractContextManager[None]:
    """Hold around constructing the application `app_name` and its ReadSide from `env`: on
    PostgreSQL, other processes starting on the same schema wait until these have created (or
    found) their tables, instead of racing them (see projections/election.py)."""
    return ddl_lock(env, (app_name, ReadModelProjection.name))


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
        election_interval: float = 0.5,
        rebuild_batch_size: int = REBUILD_BATCH_SIZE,
    ) -> None:
        self.tracker = tracker
        self.view = construct_views(env)
        target = (
            postgres_target(env, ReadModelProjection.name)
            if isinstance(self.view, PostgresViews)
            else None
        )
        self.election: Election = SoleProjector() if target is None else PostgresElection(target)
        # A standby polls for the lock (and the active one checks it still holds it) this often.
        self.election_interval = election_interval
        if isinstance(self.view, SQLiteViews):
            # Its view writes on the same SQLite file take a turn among the tracker's writers
            # (the group committer's, domain/group_commit.py): appends and view batches queue
            # in this process instead of sleeping in SQLite's busy handler behind each other.
            self.view.writers = tracker.commits.turn
        self.view.ensure_tracking_row(tracker.name)
        self.view.ensure_schema(tracker.name)
        self.runner = Runner(
            tracker,
            self.view,
            batch_size=batch_size,
            poll_interval=poll_interval,
            heads=heads,
            rebuild_batch_size=rebuild_batch_size,
        )
        self.ledger = LedgerView(self.view).reader()
        self.queries = Queries(self.view, tracker)
        self._on_saved: Callable[[Any], None] = lambda _recordings: self.runner.wake.set()
        self._started = False
        self._closing = threading.Event()
        self._transition = threading.Lock()  # promotion, demotion and stop, one at a time
        self._elector: threading.Thread | None = None
        self._standby_logged = False
        self._election_failing = False

    def start(self) -> None:
        """Run the projector: catch up, then follow, in a background thread woken by each local
        save; on PostgreSQL only while elected (otherwise stand by, polling for the lock)."""
        if self._on_saved not in self.tracker.on_saved:
            self.tracker.on_saved.append(self._on_saved)
        with self._transition:
            if self._started:
                return
            self._started = True
            self._closing.clear()
            self._standby_logged = False
            self._try_promote()  # at once: a lone process projects without waiting a poll
        if isinstance(self.election, PostgresElection):
            self._elector = threading.Thread(
                target=self._elect, name="projector-election", daemon=True
            )
            self._elector.start()

    def stop(self) -> None:
        if self._on_saved in self.tracker.on_saved:
            self.tracker.on_saved.remove(self._on_saved)
        self._closing.set()
        elector, self._elector = self._elector, None
        if elector is not None:
            elector.join(timeout=15)
        with self._transition:
            # The runner first, then the lock: the next active projector never overlaps this one.
            self.runner.stop()
            self.election.release()
            self._started = False

    def role(self) -> str:
        """This process's projector: "active", "standby" (started, another process is
        active) or "off" (not started: this process only queries)."""
        if self.election.active:
            return "active"
        return "standby" if self._started else "off"

    def projector(self) -> dict[str, Any]:
        """`role()`, and on PostgreSQL the session that holds the schema's projector lock
        (`active`: pid, application_name, client_addr, since; None when none is active)."""
        status: dict[str, Any] = {"role": self.role()}
        if isinstance(self.election, PostgresElection):
            status["active"] = self.election.holder()
        return status

    def _elect(self) -> None:
        """Standby: try for the lock every interval. Active: check the lock is still held (its
        connection alive); if not, stop projecting and stand by again."""
        while not self._closing.wait(self.election_interval):
            with self._transition:
                if self._closing.is_set():
                    return
                if not self.election.active:
                    self._try_promote()
                elif not self.election.holds():
                    log.warning("projector lock lost (its connection ended); standing by")
                    self.runner.stop()
                    self._standby_logged = False

    def _try_promote(self) -> None:
        try:
            elected = self.election.try_acquire()
        except Exception as e:  # the store is down: stay standby, try again next interval
            if not self._election_failing:  # once per outage, not every interval
                log.warning("projector election failed (%s); retrying", e)
            self._election_failing = True
            return
        self._election_failing = False
        if elected:
            log.info("projector active")
            self.runner.start()
        elif not self._standby_logged:
            log.info("projector standing by: another process's projector is active")
            self._standby_logged = True

    def close(self) -> None:
        self.stop()
        self.view.datastore.close()  # type: ignore[attr-defined]

    def run_forever(self) -> None:
        """Projector as its own process, until SIGTERM/SIGINT: active (catch up, follow) or a
        standby that takes over when the active one goes. A batch another runner applied first
        is skipped cleanly (tracking conflict), and the loop resumes after it."""

        stopping = threading.Event()

        def stop(_signum: int, _frame: Any) -> None:
            stopping.set()
            self.runner.stopping.set()
            self.runner.wake.set()

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, stop)
        self.start()
        try:
            while not stopping.wait(0.5):
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
