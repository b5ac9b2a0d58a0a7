"""Apply a batch of events to all three views in one transaction, with its tracking record.

States are loaded once per batch (one SELECT for every migration the batch touches), evolved in
memory with the domain's own `event.evolve`, and written back with `executemany`.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from domain.migration import Migration, event_type
from domain.state import MigrationState
from projections import merkle, rows
from projections.heads import Signer, TreeHead
from projections.ledger import LedgerForked, LedgerView
from projections.schema import VIEWS
from projections.views import ViewStore

ALL_VIEWS = frozenset(VIEWS)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadPolicy:
    """When the projector signs a tree head: every `every` events or `seconds` seconds."""

    signer: Signer
    every: int = 1000
    seconds: float = 60.0

    def issue(
        self, ledger: LedgerView, c: Any, size: int, root: bytes, force: bool = False
    ) -> TreeHead | None:
        try:
            return self._issue(ledger, c, size, root, force)
        except LedgerForked as forked:
            # Never sign it, but keep the views moving: `verify` names the rewrite.
            log.error("%s", forked)
            return None

    def _issue(
        self, ledger: LedgerView, c: Any, size: int, root: bytes, force: bool
    ) -> TreeHead | None:
        return ledger.issue(
            c,
            self.signer,
            size,
            root,
            datetime.now(UTC),
            every=self.every,
            seconds=self.seconds,
            force=force,
        )


Item = tuple[int, Migration.Event]  # (position in the application's log, event)


class StateCache:
    """The derived states of the migrations the last batches wrote, as committed: a batch
    takes those it finds here instead of reading them back from the migrations view and
    decoding their JSON, and reads only the others. Least recently written first out, so its
    memory is bounded however large the store. Used by a rebuild, and by the follow loop
    between its batches; valid only at `position`, the end of the last batch it was given:
    `process_batch` empties it when a batch fails (the states it evolved in place were not
    committed), which includes another runner having moved the position, and `Runner.step`
    when a batch starts elsewhere (a rebuild ran, or the position was read again)."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._states: OrderedDict[str, MigrationState] = OrderedDict()
        # The log position the states are as of (the last batch committed with them): a
        # batch starting anywhere else must not use them (Runner.step empties the cache).
        self.position: int | None = None

    def take(self, ids: Sequence[str]) -> tuple[dict[str, MigrationState], list[str]]:
        """The cached states of `ids`, and the ids not cached."""
        found, missing = {}, []
        for i in ids:
            state = self._states.get(i)
            if state is None:
                missing.append(i)
            else:
                found[i] = state
        return found, missing

    def put(self, states: dict[str, MigrationState], ids: Sequence[str]) -> None:
        for i in ids:
            self._states[i] = states[i]
            self._states.move_to_end(i)
        while len(self._states) > self.size:
            self._states.popitem(last=False)

    def clear(self) -> None:
        self._states.clear()
        self.position = None

    def __len__(self) -> int:
        return len(self._states)


_UPSERT_MIGRATION = (
    "INSERT INTO {migrations} ("
    + ", ".join(rows.MIGRATION_COLUMNS)
    + ") VALUES ("
    + ",".join("?" * len(rows.MIGRATION_COLUMNS))
    + ") ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in rows.MIGRATION_COLUMNS[1:])
)


class ReadModelProjection(Projection[ViewStore]):
    """All three views of the tracker, written together.

    `process_batch` is the fast path the runner uses; `process_event` keeps the library's
    per-event interface (e.g. for `eventsourcing.projection.ProjectionRunner`).
    """

    name = "csp_tracker_views"
    topics = rows.MIGRATION_TOPICS

    def __init__(
        self, view: ViewStore, app_name: str = "csp_tracker", heads: HeadPolicy | None = None
    ) -> None:
        super().__init__(view)
        self.app_name = app_name
        self.ledger = LedgerView(view)
        self.heads = heads

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        # The library's per-event interface sees decoded events only: the ledger, which hashes
        # the stored bytes, is kept by `process_batch` (the path the runner uses).
        items = [(tracking.notification_id, domain_event)]
        with self.view.write() as c:
            self.view._insert_tracking(c, tracking)  # type: ignore[attr-defined]
            self.apply(c, items, ALL_VIEWS - {"ledger"})

    def process_batch(
        self,
        items: Sequence[Item],
        *,
        expected: int,
        last: int,
        raw: Sequence[Any] = (),
        cache: StateCache | None = None,
    ) -> None:
        """Apply `items` (the Migration events among positions expected+1..last) and `raw` (every
        stored event in that range, for the ledger) exactly once. With `cache`, the states of
        the migrations touched are taken from it where present and kept in it once committed."""
        try:
            with self.view.write() as c:
                self.view.guard(c, self.app_name, expected)
                self.view._insert_tracking(c, Tracking(self.app_name, last))  # type: ignore[attr-defined]
                size, root = self.apply(c, items, raw=raw, cache=cache)
                if self.heads is not None and raw:
                    self.heads.issue(self.ledger, c, size, root)
        except BaseException:
            if cache is not None:
                cache.clear()
            raise

    def issue_head(self, *, force: bool = False) -> Any:
        """A head for the ledger as it stands, if one is due (or `force`): called when idle, so
        the last events are anchored within the head interval even if no more arrive."""
        if self.heads is None:
            return None
        with self.view.write() as c:
            size = self.ledger.size(c)
            root = merkle.root(size, lambda level, i: self.ledger._node(c, level, i))
            return self.heads.issue(self.ledger, c, size, root, force=force)

    # -- the work ----------------------------------------------------------------------------
    def apply(
        self,
        c: Any,
        items: Sequence[Item],
        views: frozenset[str] = ALL_VIEWS,
        states: dict[str, MigrationState] | None = None,
        raw: Sequence[Any] = (),
        cache: StateCache | None = None,
    ) -> tuple[int, bytes]:
        """Write `views` for `items` (and the ledger for `raw`); the ledger's size and root
        after it (0 and the empty root when the ledger is not written). `states` (all states
        so far, kept by the caller) replaces reading them from the migrations table: used to
        rebuild one view alone. `cache` (see `StateCache`) spares reading those it has; it is
        given the states of this batch, to keep if the transaction commits."""
        ledger = (0, merkle.EMPTY_ROOT)
        if "ledger" in views and raw:
            ledger = self.ledger.append(c, raw)
        if not items:
            return ledger
        v = self.view
        ids = list(dict.fromkeys(str(e.originator_id) for _, e in items))  # first-seen order
        if states is not None:
            current = states
        elif cache is not None:
            current, missing = cache.take(ids)
            if missing:
                current.update(self._load(c, missing))
        else:
            current = self._load(c, ids)
        before = (
            {
                i: (rows.contribution(current[i]), rows.summary_dates(current[i]))
                for i in ids
                if i in current
            }
            if "summary" in views
            else {}
        )
        # The searchable text before the batch (None: a migration new to the view).
        searched = {i: _search_key(current.get(i)) for i in ids} if "migrations" in views else {}
        first: dict[str, int] = {}
        touched: dict[str, tuple[int, str, str]] = {}
        audit: list[tuple[Any, ...]] = []
        prev = self._last_hash(c) if "audit" in views else ""
        with_audit = "audit" in views
        for position, event in items:
            mid = str(event.originator_id)
            state = current.get(mid)
            if state is None:
                state = current[mid] = MigrationState()
            event.evolve(state)
            first.setdefault(mid, position)
            recorded_at = rows.iso(event.timestamp)
            touched[mid] = (event.originator_version, event_type(event), recorded_at)
            if with_audit:
                record, prev = rows.audit_record(
                    position, event, mid, recorded_at, state.partner_id, state.tenant_id, prev
                )
                audit.append(record)

        if "migrations" in views:
            c.executemany(
                v.sql(_UPSERT_MIGRATION),
                [rows.migration_row(m, current[m], *touched[m]) for m in touched],
            )
            self._delete_where_in(c, "migration_risks", "migration_id", ids)
            risks = [r for m in ids for r in rows.risk_rows(m, current[m])]
            if risks:
                v.insert_rows(c, "migration_risks", ("migration_id", "risk"), risks)
            self._search(c, ids, current, searched, first)
        if "audit" in views and audit:
            v.insert_rows(c, "audit", rows.AUDIT_COLUMNS, audit)
        if "summary" in views:
            self._summary(c, ids, current, before)
        if cache is not None:
            cache.put(current, ids)
        return ledger

    def _search(
        self,
        c: Any,
        ids: list[str],
        current: dict[str, MigrationState],
        searched: dict[str, tuple[str, str] | None],
        first: dict[str, int],
    ) -> None:
        """A search row for each migration new to the view; the text of any whose name or
        tenant changed (no event changes them today). Most batches write nothing here."""
        new, changed = [], []
        for mid in ids:
            state, before = current[mid], searched[mid]
            if before is None:
                new.append(rows.search_row(mid, first[mid], state.customer_name, state.tenant_id))
            elif before != _search_key(state):
                _, _, name, tenant = rows.search_row(mid, 0, state.customer_name, state.tenant_id)
                changed.append((mid, name, tenant))
        if new or changed:
            self.view.write_search(c, new, changed)

    def _load(self, c: Any, ids: list[str]) -> dict[str, MigrationState]:
        c.execute(
            self.view.sql(f"SELECT id, state FROM {{migrations}} WHERE id IN ({_marks(ids)})"),
            ids,
        )
        return {r["id"]: rows.load_state(r["state"]) for r in c.fetchall()}

    def _last_hash(self, c: Any) -> str:
        c.execute(self.view.sql("SELECT hash FROM {audit} ORDER BY position DESC LIMIT 1"))
        row = c.fetchone()
        return row["hash"] if row else rows.GENESIS_HASH

    def _delete_where_in(self, c: Any, table: str, column: str, ids: list[str]) -> None:
        c.execute(self.view.sql(f"DELETE FROM {{{table}}} WHERE {column} IN ({_marks(ids)})"), ids)

    def _summary(
        self,
        c: Any,
        ids: list[str],
        current: dict[str, MigrationState],
        before: dict[str, tuple[Counter[str], Counter[tuple[str, str]]]],
    ) -> None:
        v = self.view
        # Counters: add each touched migration's new contribution, take away its old one.
        deltas: dict[tuple[str, str], Decimal] = {}
        dates: Counter[tuple[str, str, str]] = Counter()
        nothing: tuple[Counter[str], Counter[tuple[str, str]]] = (Counter(), Counter())
        for mid in ids:
            partner = current[mid].partner_id
            old_contribution, old_dates = before.get(mid, nothing)
            for metric, n in rows.contribution(current[mid]).items():
                key = (partner, metric)
                deltas[key] = deltas.get(key, Decimal(0)) + Decimal(n)
            for metric, n in old_contribution.items():
                key = (partner, metric)
                deltas[key] = deltas.get(key, Decimal(0)) - Decimal(n)
            for (kind, day), n in rows.summary_dates(current[mid]).items():
                dates[(partner, kind, day)] += n
            for (kind, day), n in old_dates.items():
                dates[(partner, kind, day)] -= n
        deltas = {k: d for k, d in deltas.items() if d != 0}
        if deltas:
            partners = sorted({p for p, _ in deltas})
            c.execute(
                v.sql(
                    "SELECT partner_id, metric, value FROM {summary} "
                    f"WHERE partner_id IN ({_marks(partners)})"
                ),
                partners,
            )
            stored = {(r["partner_id"], r["metric"]): Decimal(r["value"]) for r in c.fetchall()}
            upserts, deletes = [], []
            for key, delta in sorted(deltas.items()):
                value = stored.get(key, Decimal(0)) + delta
                if value == 0:
                    deletes.append(key)
                else:
                    upserts.append((*key, rows.decimal_text(value)))
            if deletes:
                c.executemany(
                    v.sql("DELETE FROM {summary} WHERE partner_id = ? AND metric = ?"), deletes
                )
            if upserts:
                c.executemany(
                    v.sql(
                        "INSERT INTO {summary} (partner_id, metric, value) VALUES (?, ?, ?) "
                        "ON CONFLICT (partner_id, metric) DO UPDATE SET value = excluded.value"
                    ),
                    upserts,
                )
        # Date buckets of the time-dependent counts: add each delta to the stored count, then
        # delete the buckets it brought to 0, so the table is the same however events were
        # batched (and equal to a rebuild).
        changed = sorted((*key, n) for key, n in dates.items() if n != 0)
        if changed:
            c.executemany(
                v.sql(
                    "INSERT INTO {summary_dates} AS d (partner_id, kind, day, n) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (partner_id, kind, day) "
                    "DO UPDATE SET n = d.n + excluded.n"
                ),
                changed,
            )
            emptied = [key for *key, n in changed if n < 0]
            if emptied:
                c.executemany(
                    v.sql(
                        "DELETE FROM {summary_dates} "
                        "WHERE partner_id = ? AND kind = ? AND day = ? AND n = 0"
                    ),
                    emptied,
                )


def _search_key(state: MigrationState | None) -> tuple[str, str] | None:
    return None if state is None else (state.customer_name, state.tenant_id)


def _marks(values: Iterable[Any]) -> str:
    return ",".join("?" for _ in values)
