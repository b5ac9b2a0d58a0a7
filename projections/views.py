"""The view classes: the library's tracking recorders, extended with the read side's tables.

One class per store, sharing everything but naming and placeholders (`ViewStore`). All three
views and the tracking position are written in the same transaction, so each batch of events is
applied exactly once: `guard()` locks the tracking row and checks it still holds the position
the batch was read from, then the library's `_insert_tracking` moves it to the batch's end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL

from projections.schema import (
    KEY_COLUMNS,
    SCHEMA_VERSION,
    TABLE_PREFIX,
    TABLES,
    VIEWS,
    create_statements,
    drop_index_statements,
    index_statements,
)


class TrackingConflict(IntegrityError):
    """Another runner moved the tracked position first: re-read it and carry on."""


_NAME = re.compile(r"\{(\w+)\}")


class ViewStore(TrackingRecorder):
    """SQL shared by both stores. Templates use `?` placeholders and `{table}` names. Mixed
    into the library's tracking recorder of each store (so abstract on its own)."""

    placeholder = "?"
    datastore: Any

    def _qualified(self, table: str) -> str:
        raise NotImplementedError

    def _tracking_table(self) -> str:
        raise NotImplementedError

    def sql(self, template: str) -> str:
        cache: dict[str, str] = self.__dict__.setdefault("_sql_cache", {})
        text = cache.get(template)
        if text is None:

            def name(m: re.Match[str]) -> str:
                key = m.group(1)
                return self._tracking_table() if key == "tracking" else self._qualified(key)

            text = _NAME.sub(name, template)
            if self.placeholder != "?":
                text = text.replace("?", self.placeholder)
            cache[template] = text
        return text

    def marks(self, n: int) -> str:
        return ",".join("?" * n)

    # -- transactions ---------------------------------------------------------------------
    def write(self) -> AbstractContextManager[Any]:
        return self.datastore.transaction(commit=True)

    def read(self) -> AbstractContextManager[Any]:
        return self.datastore.transaction(commit=False)

    def fetch(self, template: str, params: Any = ()) -> list[Any]:
        with self.read() as c:
            c.execute(self.sql(template), params)
            return list(c.fetchall())

    def fetch_iter(self, template: str, params: Any = ()) -> Iterator[Any]:
        yield from self.fetch(template, params)

    # -- tracking ---------------------------------------------------------------------------
    def ensure_tracking_row(self, app_name: str) -> None:
        """Start the tracked position at 0 so that `guard` always has a row to lock."""
        with self.write() as c:
            c.execute(
                self.sql(
                    "INSERT INTO {tracking} (application_name, notification_id) "
                    "VALUES (?, 0) ON CONFLICT DO NOTHING"
                ),
                (app_name,),
            )

    def insert_rows(
        self, c: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Plain INSERTs of many rows (overridden where the store has a faster path)."""
        marks = ", ".join("?" for _ in columns)
        c.executemany(
            self.sql(f"INSERT INTO {{{table}}} ({', '.join(columns)}) VALUES ({marks})"), rows
        )

    def ensure_schema(self, app_name: str) -> bool:
        """Drop and re-create the view tables if they were built with another layout, and
        move tracking back to 0 so that the runner rebuilds them. True if it did."""
        with self.write() as c:
            c.execute(self.sql("CREATE TABLE IF NOT EXISTS {schema} (version INTEGER NOT NULL)"))
            c.execute(self.sql("SELECT version FROM {schema}"))
            row = c.fetchone()
            if row is not None and row["version"] == SCHEMA_VERSION:
                return False
            for table in TABLES:
                c.execute(self.sql(f"DROP TABLE IF EXISTS {{{table}}}"))
            for statement in create_statements(self._qualified):
                c.execute(statement)
            c.execute(
                self.sql("UPDATE {tracking} SET notification_id = 0 WHERE application_name = ?"),
                (app_name,),
            )
            c.execute(self.sql("DELETE FROM {schema}"))
            c.execute(self.sql("INSERT INTO {schema} (version) VALUES (?)"), (SCHEMA_VERSION,))
            return True

    def guard(self, c: Any, app_name: str, expected: int) -> None:
        """Lock the tracking row; refuse if another runner moved it since we read it.

        A write first, so SQLite takes its write lock before anything is read and PostgreSQL
        makes a concurrent runner wait here, then re-check the condition against the row the
        winner committed.
        """
        c.execute(
            self.sql(
                "UPDATE {tracking} SET notification_id = notification_id "
                "WHERE application_name = ? AND notification_id = ? RETURNING notification_id"
            ),
            (app_name, expected),
        )
        if c.fetchone() is None:
            msg = f"tracked position of {app_name} is no longer {expected}"
            raise TrackingConflict(msg)

    def position(self, app_name: str) -> int:
        return self.max_tracking_id(app_name) or 0

    def reset(self, c: Any, app_name: str, views: list[str]) -> None:
        """Empty the tables of `views`; with all views, also move tracking back to 0."""
        for view in views:
            for table in VIEWS[view]:
                self._empty(c, table)
        if sorted(views) == sorted(VIEWS):
            c.execute(
                self.sql("UPDATE {tracking} SET notification_id = 0 WHERE application_name = ?"),
                (app_name,),
            )

    def _empty(self, c: Any, table: str) -> None:
        c.execute(self.sql(f"DELETE FROM {{{table}}}"))

    def _index_name(self, name: str) -> str:
        return name

    def drop_indexes(self, views: list[str]) -> None:
        tables = tuple(t for v in views for t in VIEWS[v])
        with self.write() as c:
            for statement in drop_index_statements(self._index_name, tables):
                c.execute(statement)

    def create_indexes(self) -> None:
        with self.write() as c:
            for statement in index_statements(self._qualified):
                c.execute(statement)

    def dump(self, app_name: str) -> dict[str, list[tuple[Any, ...]]]:
        """Every view table in primary-key order, plus the tracked position: for comparisons."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.read() as c:
            for table in TABLES:
                order = ", ".join(str(i + 1) for i in range(KEY_COLUMNS.get(table, 2)))
                c.execute(self.sql(f"SELECT * FROM {{{table}}} ORDER BY {order}"))
                out[table] = [tuple(dict(r).values()) for r in c.fetchall()]
        out["tracking"] = [(self.position(app_name),)]
        return out


class SQLiteViews(ViewStore, SQLiteTrackingRecorder):
    """The views in the application's SQLite file (its tracking table is named `tracking`)."""

    datastore: SQLiteDatastore

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *create_statements(self._qualified)]

    def _qualified(self, table: str) -> str:
        return TABLE_PREFIX + table

    def _tracking_table(self) -> str:
        return "tracking"

    @contextmanager
    def write(self) -> Iterator[Any]:
        # Per-connection settings of the views' own connections (the events' keep theirs):
        # synchronous=NORMAL - in WAL mode a commit stays atomic (rows and tracking position
        # together); only a power cut may undo the last batches, which are then re-projected.
        # A 64 MB page cache and checkpoints every ~80 MB of WAL instead of every 4 MB: the
        # views write many pages per batch, and checkpointing at each commit halved the rate.
        with self.datastore.get_connection(commit=True) as conn:
            sqlite = conn._sqlite_conn
            sqlite.execute("PRAGMA synchronous=NORMAL")
            sqlite.execute("PRAGMA cache_size=-65536")
            sqlite.execute("PRAGMA wal_autocheckpoint=20000")
            with conn.transaction(commit=True) as c:
                yield c


class PostgresViews(ViewStore, PostgresTrackingRecorder):
    """The views in the application's PostgreSQL schema (tracking table `<env name>_tracking`)."""

    placeholder = "%s"
    datastore: PostgresDatastore

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # The library annotates list[Composed] but needs only Composable (as_string, execute).
        statements = [SQL(s) for s in create_statements(self._qualified)]
        self.sql_create_statements += statements  # type: ignore[arg-type]

    def _qualified(self, table: str) -> str:
        return f'"{self.datastore.schema}"."{TABLE_PREFIX}{table}"'

    def _tracking_table(self) -> str:
        return f'"{self.datastore.schema}"."{self.tracking_table_name}"'

    def _empty(self, c: Any, table: str) -> None:
        c.execute(self.sql(f"TRUNCATE {{{table}}}"))

    def insert_rows(
        self, c: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        # COPY: one statement for the batch instead of one per row (the ledger writes about
        # two rows per event, and executemany's per-row statements dominated its cost).
        with c.copy(f"COPY {self._qualified(table)} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _index_name(self, name: str) -> str:
        return f'"{self.datastore.schema}"."{name}"'
