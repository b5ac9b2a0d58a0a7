"""The view classes: the library's tracking recorders, extended with the read side's tables.

One class per store, sharing everything but naming and placeholders (`ViewStore`). All three
views and the tracking position are written in the same transaction, so each batch of events is
applied exactly once: `guard()` locks the tracking row and checks it still holds the position
the batch was read from, then the library's `_insert_tracking` moves it to the batch's end.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from functools import cache
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL

from projections import rows
from projections.schema import (
    KEY_COLUMNS,
    PG_TRGM_INDEX,
    SCHEMA_VERSION,
    SEARCH_COLUMNS,
    SEARCH_TABLE,
    SEARCH_WORDS,
    SEARCH_WORDS_COLUMNS,
    SQLITE_FTS,
    SQLITE_TABLE_OPTIONS,
    TABLE_PREFIX,
    TABLES,
    TRIGRAM,
    VIEWS,
    create_statements,
    drop_index_statements,
    index_statements,
    pg_trgm_index_statement,
    pg_words_statements,
    sqlite_fts_statement,
)

log = logging.getLogger(__name__)


@cache
def trigram_available() -> bool:
    """Whether this process's SQLite has FTS5 with the trigram tokenizer (3.34+)."""
    try:
        with closing(sqlite3.connect(":memory:")) as db:
            db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='trigram case_sensitive 1')")
    except sqlite3.OperationalError:
        return False
    return True


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

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Around a rebuild: this store's settings for writing many rows (none by default)."""
        yield

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

    # Upgrades in place: from a layout to the next, without re-projecting the log.
    UPGRADES: dict[int, str] = {3: "_add_search"}
    table_options: dict[str, str] = {}

    def ensure_schema(self, app_name: str) -> bool:
        """Bring the view tables to this layout: upgrade them in place where `UPGRADES` has
        the steps, else drop and re-create them and move tracking back to 0 so that the runner
        rebuilds them (True if it did). Then make sure the search index exists."""
        self._prepare_search()
        with self.write() as c:
            c.execute(self.sql("CREATE TABLE IF NOT EXISTS {schema} (version INTEGER NOT NULL)"))
            c.execute(self.sql("SELECT version FROM {schema}"))
            row = c.fetchone()
            version = None if row is None else row["version"]
            # Hold the tracking row (as each batch does first), so that no batch commits
            # while the tables change under it.
            c.execute(
                self.sql(
                    "UPDATE {tracking} SET notification_id = notification_id "
                    "WHERE application_name = ?"
                ),
                (app_name,),
            )
            while version in self.UPGRADES and getattr(self, self.UPGRADES[version])(c):
                version += 1
            rebuilt = version != SCHEMA_VERSION
            if rebuilt:
                self._drop_search_index(c)
                for table in TABLES:
                    c.execute(self.sql(f"DROP TABLE IF EXISTS {{{table}}}"))
                for statement in create_statements(self._qualified, self.table_options):
                    c.execute(statement)
                c.execute(
                    self.sql(
                        "UPDATE {tracking} SET notification_id = 0 WHERE application_name = ?"
                    ),
                    (app_name,),
                )
            if version != (None if row is None else row["version"]) or rebuilt:
                c.execute(self.sql("DELETE FROM {schema}"))
                c.execute(self.sql("INSERT INTO {schema} (version) VALUES (?)"), (SCHEMA_VERSION,))
            self.ensure_search_index(c)
            return rebuilt

    def _add_search(self, c: Any) -> bool:
        """3 -> 4: `migration_search`, filled from the migrations view, with each migration's
        first position from the audit view (as the projector would have written it). False
        (rebuild everything instead) if a migration has no audit row."""
        for statement in create_statements(self._qualified, self.table_options):
            c.execute(statement)
        self._empty(c, SEARCH_TABLE)
        c.execute(
            self.sql(
                "SELECT m.id, m.customer_name, m.tenant_id, (SELECT MIN(a.position) "
                "FROM {audit} a WHERE a.migration_id = m.id) AS first FROM {migrations} m"
            )
        )
        found = c.fetchall()
        if any(r["first"] is None for r in found):
            log.warning("views disagree (a migration without audit rows): rebuilding them")
            return False
        new = [
            rows.search_row(r["id"], r["first"], r["customer_name"], r["tenant_id"]) for r in found
        ]
        if new:
            self.write_search(c, new, [])  # the rows and whatever indexes them
        log.info("views upgraded in place: %d migrations indexed for text search", len(new))
        return True

    # -- text search --------------------------------------------------------------------------
    def _prepare_search(self) -> None:
        """Anything the search index needs outside the schema's transaction (PostgreSQL's
        extension)."""

    def ensure_search_index(self, c: Any) -> None:
        """Create the search index if the store can have one and it is missing."""

    def _drop_search_index(self, c: Any) -> None:
        """Before the tables are dropped."""

    def write_search(
        self, c: Any, new: list[tuple[Any, ...]], changed: list[tuple[str, str, str]]
    ) -> None:
        """Add the search rows of new migrations (`rows.search_row`); replace the text of
        `changed` ones ((id, customer_name, tenant_id), lowered)."""
        if new:
            self.insert_rows(c, SEARCH_TABLE, SEARCH_COLUMNS, new)
        if changed:
            c.executemany(
                self.sql(
                    "UPDATE {migration_search} SET customer_name = ?, tenant_id = ? WHERE id = ?"
                ),
                [(name, tenant, mid) for mid, name, tenant in changed],
            )

    def text_condition(self, c: Any, needle: str, limit: int) -> tuple[str, list[Any]]:
        """A condition on `{migrations}.id`: its name, tenant or id contains `needle` (lowered,
        see rows.search_needle). PostgreSQL's planner picks the trigram index or a walk in id
        order from its statistics, so one statement serves every needle."""
        pattern = f"%{needle}%"
        return (
            "id IN (SELECT id FROM {migration_search} "
            "WHERE customer_name LIKE ? OR tenant_id LIKE ? OR id LIKE ?)",
            [pattern] * 3,
        )

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
            self.ensure_search_index(c)

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
    table_options = SQLITE_TABLE_OPTIONS
    # Entered around each write transaction: the application's writers' turn when the views
    # share its file in this process (ReadSide sets it), so that neither sleeps in SQLite's busy
    # handler waiting for the other.
    writers: Callable[[], AbstractContextManager[Any]] = nullcontext
    # A text search fetches at most PROBE x limit ids from the index before it decides how to
    # answer (see text_condition).
    PROBE = 20

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *create_statements(self._qualified, self.table_options),
        ]

    # -- text search --------------------------------------------------------------------------
    def _has_fts(self, c: Any) -> bool:
        c.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (self._qualified(SQLITE_FTS),))
        return c.fetchone() is not None

    def _fts(self, c: Any) -> bool:
        """Whether the full-text index exists: it does once ensure_schema has run, unless this
        SQLite lacks FTS5 or its trigram tokenizer (remembered: only ensure_schema, in one
        transaction, drops and re-creates it)."""
        found = self.__dict__.get("_fts_exists")
        if found is None:
            found = self.__dict__["_fts_exists"] = self._has_fts(c)
        return bool(found)

    def ensure_search_index(self, c: Any) -> None:
        self.__dict__.pop("_fts_exists", None)
        if self._fts(c):
            return
        if not trigram_available():
            log.warning(
                "SQLite %s has no FTS5 trigram tokenizer (needs 3.34+): text search scans "
                "the migration_search table",
                sqlite3.sqlite_version,
            )
            return
        c.execute(sqlite_fts_statement(self._qualified))
        # Index what the table already holds (after an upgrade, or a store first opened
        # by a SQLite without the tokenizer).
        c.execute(
            self.sql(
                "INSERT INTO {migration_search_fts} (rowid, id, customer_name, tenant_id) "
                "SELECT position, id, customer_name, tenant_id FROM {migration_search}"
            )
        )
        self.__dict__["_fts_exists"] = True

    def _drop_search_index(self, c: Any) -> None:
        c.execute(self.sql("DROP TABLE IF EXISTS {migration_search_fts}"))
        self.__dict__["_fts_exists"] = False

    def _empty(self, c: Any, table: str) -> None:
        if table == SEARCH_TABLE and self._fts(c):
            c.execute(
                self.sql(
                    "INSERT INTO {migration_search_fts} ({migration_search_fts}) "
                    "VALUES ('delete-all')"
                )
            )
        super()._empty(c, table)

    def write_search(
        self, c: Any, new: list[tuple[Any, ...]], changed: list[tuple[str, str, str]]
    ) -> None:
        fts = self._fts(c)
        if changed and fts:
            # An external-content index forgets a row only when told its old text.
            c.execute(
                self.sql(
                    "SELECT position, id, customer_name, tenant_id FROM {migration_search} "
                    f"WHERE id IN ({self.marks(len(changed))})"
                ),
                [mid for mid, _, _ in changed],
            )
            old = [tuple(r) for r in c.fetchall()]
            c.executemany(
                self.sql(
                    "INSERT INTO {migration_search_fts} "
                    "({migration_search_fts}, rowid, id, customer_name, tenant_id) "
                    "VALUES ('delete', ?, ?, ?, ?)"
                ),
                old,
            )
        super().write_search(c, new, changed)
        if fts:
            added = list(new)
            if changed:
                c.execute(
                    self.sql(
                        "SELECT id, position, customer_name, tenant_id FROM {migration_search} "
                        f"WHERE id IN ({self.marks(len(changed))})"
                    ),
                    [mid for mid, _, _ in changed],
                )
                added += [tuple(r) for r in c.fetchall()]
            if added:
                c.executemany(
                    self.sql(
                        "INSERT INTO {migration_search_fts} "
                        "(id, rowid, customer_name, tenant_id) VALUES (?, ?, ?, ?)"
                    ),
                    added,
                )

    def search_probe(self, needle: str, cap: int, *, fts: bool = True) -> tuple[str, list[Any]]:
        """The statement that fetches at most cap + 1 ids of migrations matching `needle`."""
        if fts and len(needle) >= TRIGRAM:
            # One FTS5 phrase (quotes doubled): with the trigram tokenizer, its trigrams at
            # consecutive places in one column, which is the needle as a substring.
            phrase = '"' + needle.replace('"', '""') + '"'
            return (
                self.sql(
                    "SELECT s.id FROM {migration_search_fts} JOIN {migration_search} s "
                    "ON s.position = {migration_search_fts}.rowid "
                    "WHERE {migration_search_fts} MATCH ? LIMIT ?"
                ),
                [phrase, cap + 1],
            )
        return (
            self.sql(
                "SELECT id FROM {migration_search} WHERE instr(customer_name, ?) > 0 "
                "OR instr(tenant_id, ?) > 0 OR instr(id, ?) > 0 LIMIT ?"
            ),
            [needle, needle, needle, cap + 1],
        )

    def text_condition(self, c: Any, needle: str, limit: int) -> tuple[str, list[Any]]:
        """SQLite's planner cannot weigh an FTS match against a walk in id order, so ask the
        index first, for at most PROBE x limit ids: if that is all of them, they are the
        answer's candidates (few: cheap to look up); if there are more, the text is common
        and walking the migrations in id order reaches `limit` matches soon (about
        limit / share of rows matching). Texts shorter than a trigram, or a SQLite without
        the index, probe with a scan of the (narrow) search table instead."""
        cap = self.PROBE * limit
        c.execute(*self.search_probe(needle, cap, fts=self._fts(c)))
        ids = [r["id"] for r in c.fetchall()]
        if len(ids) <= cap:
            return "id IN (SELECT value FROM json_each(?))", [json.dumps(ids)]
        return (
            "EXISTS (SELECT 1 FROM {migration_search} s WHERE s.id = {migrations}.id AND "
            "(instr(s.customer_name, ?) > 0 OR instr(s.tenant_id, ?) > 0 OR instr(s.id, ?) > 0))",
            [needle] * 3,
        )

    def _qualified(self, table: str) -> str:
        return TABLE_PREFIX + table

    def _tracking_table(self) -> str:
        return "tracking"

    _bulk = False

    @contextmanager
    def bulk(self) -> Iterator[None]:
        self._bulk = True
        try:
            yield
        finally:
            self._bulk = False

    @contextmanager
    def write(self) -> Iterator[Any]:
        # Per-connection settings of the views' own connections (the events' keep theirs):
        # synchronous=NORMAL - in WAL mode a commit stays atomic (rows and tracking position
        # together); only a power cut may undo the last batches, which are then re-projected.
        # A 64 MB page cache and checkpoints every ~80 MB of WAL instead of every 4 MB: the
        # views write many pages per batch, and checkpointing at each commit halved the rate.
        # During a rebuild (`bulk`) a 256 MB cache: at 1 M events the migrations table (keyed
        # by random ids) outgrows 64 MB, and the index builds at the end sort in it. Never
        # synchronous=OFF: the file is the event store's too, and a checkpoint run from this
        # connection would then copy the events' pages without syncing them.
        with self.writers(), self.datastore.get_connection(commit=True) as conn:
            sqlite = conn._sqlite_conn
            sqlite.execute("PRAGMA synchronous=NORMAL")
            sqlite.execute(f"PRAGMA cache_size={-262144 if self._bulk else -65536}")
            # The index builds after a rebuild sort with a helper thread (0: SQLite's default).
            sqlite.execute(f"PRAGMA threads={2 if self._bulk else 0}")
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
        statements = [SQL(s) for s in create_statements(self._qualified, self.table_options)]
        self.sql_create_statements += statements  # type: ignore[arg-type]

    def _qualified(self, table: str) -> str:
        return f'"{self.datastore.schema}"."{TABLE_PREFIX}{table}"'

    def _tracking_table(self) -> str:
        return f'"{self.datastore.schema}"."{self.tracking_table_name}"'

    def _empty(self, c: Any, table: str) -> None:
        if table == SEARCH_TABLE and self._has_words(c):
            c.execute(self.sql("TRUNCATE {migration_search_words}"))
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

    # -- text search --------------------------------------------------------------------------
    TRGM_EXTENSION = "pg_trgm"
    trgm_schema: str | None = None  # where pg_trgm lives; None: not available

    def _prepare_search(self) -> None:
        """pg_trgm, created in `public` if no schema of this database has it yet (creating
        it needs the privilege to: a superuser, or CREATE on the database for this trusted
        extension). Without it, text search scans the search table: never a failed start."""
        name = self.TRGM_EXTENSION
        find = (
            "SELECT n.nspname AS schema FROM pg_extension e "
            f"JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = '{name}'"
        )
        self.trgm_schema = None
        try:
            with self.write() as c:
                c.execute(find)
                row = c.fetchone()
                if row is None:
                    c.execute(f"CREATE EXTENSION IF NOT EXISTS {name} SCHEMA public")
                    c.execute(find)
                    row = c.fetchone()
            self.trgm_schema = row["schema"]
        except PersistenceError as e:
            # Another process may have created it meanwhile (a unique violation here).
            with self.read() as c:
                c.execute(find)
                row = c.fetchone()
            if row is None:
                log.warning(
                    "%s is not available (%s): text search scans the migration_search "
                    "table instead of using a trigram index",
                    name,
                    str(e).strip(),
                )
            else:
                self.trgm_schema = row["schema"]

    def ensure_search_index(self, c: Any) -> None:
        if self.trgm_schema is not None:
            c.execute(pg_trgm_index_statement(self._qualified, self.trgm_schema))
            # An index made before fastupdate was turned off: turn it off, and merge what
            # its pending list holds (nothing to do the next time).
            index = self._index_name(PG_TRGM_INDEX)
            c.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (index,))
            if "fastupdate=off" not in (c.fetchone()["reloptions"] or []):
                c.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
                c.execute("SELECT gin_clean_pending_list(%s::regclass)", (index,))
        self.__dict__.pop("_words_exist", None)
        if self._has_words(c):
            return
        for statement in pg_words_statements(self._qualified):
            c.execute(statement)
        self.__dict__["_words_exist"] = True
        # Index what the table already holds (a store whose views predate the words).
        c.execute(self.sql("SELECT id, customer_name, tenant_id FROM {migration_search}"))
        self._add_words(c, [(r["id"], r["customer_name"], r["tenant_id"]) for r in c.fetchall()])

    def _drop_search_index(self, c: Any) -> None:
        c.execute(self.sql("DROP TABLE IF EXISTS {migration_search_words}"))
        self.__dict__["_words_exist"] = False

    def _has_words(self, c: Any) -> bool:
        """Whether the words table exists, remembered (as SQLite's `_fts`): only ensure_schema,
        in one transaction, drops and creates it, so the projector's batches ask no catalog."""
        found = self.__dict__.get("_words_exist")
        if found is None:
            c.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS found", (self._qualified(SEARCH_WORDS),)
            )
            found = self.__dict__["_words_exist"] = bool(c.fetchone()["found"])
        return bool(found)

    def _add_words(self, c: Any, texts: list[tuple[str, str, str]]) -> None:
        """The words rows of search rows given as (id, customer_name, tenant_id), lowered.
        Nothing while the table does not exist yet (an upgrade from a layout before it, run
        before ensure_search_index, which then fills it from the search table)."""
        if not texts or not self._has_words(c):
            return
        words = [
            (w, w[::-1], mid) for mid, name, tenant in texts
            for w in sorted(rows.search_words(mid, name, tenant))
        ]  # fmt: skip
        if words:
            self.insert_rows(c, SEARCH_WORDS, SEARCH_WORDS_COLUMNS, words)

    def write_search(
        self, c: Any, new: list[tuple[Any, ...]], changed: list[tuple[str, str, str]]
    ) -> None:
        if changed:  # forget the old words of a renamed migration
            c.execute(
                self.sql(
                    "SELECT id, customer_name, tenant_id FROM {migration_search} WHERE id = ANY(?)"
                ),
                ([mid for mid, _, _ in changed],),
            )
            c.executemany(
                self.sql("DELETE FROM {migration_search_words} WHERE word = ? AND id = ?"),
                [
                    (w, r["id"]) for r in c.fetchall()
                    for w in rows.search_words(r["id"], r["customer_name"], r["tenant_id"])
                ],
            )  # fmt: skip
        super().write_search(c, new, changed)
        self._add_words(c, [(mid, name, tenant) for mid, _, name, tenant in new] + changed)

    # A text search with words looks up at most PROBE x limit rows by one of them before it
    # falls back to the trigram index (see text_condition). Each candidate's text is read and
    # checked (~10 us each): a word in more rows than that is cheaper for the trigram index.
    PROBE = 5

    def text_condition(self, c: Any, needle: str, limit: int) -> tuple[str, list[Any]]:
        """When the needle holds a word that a matching text must contain whole, begin or end
        with (rows.needle_words), and some such word is in at most PROBE x limit search rows,
        those rows are the candidates: checked against the needle here, by the same "contains"
        as LIKE, and the page is looked up by id. The cost then depends on how many rows share
        the word, not on the size of the table (GIN's trigram lists grow with it). Otherwise
        (one word, or only common ones) the planner decides, as before."""
        cap = self.PROBE * limit
        for kind, word in rows.needle_words(needle):
            if kind == "exact":
                where, params = "w.word = ?", [word]
            else:
                column, key = ("word", word) if kind == "prefix" else ("drow", word[::-1])
                bounds = rows.prefix_range(key)
                if bounds is None:
                    continue
                where, params = f"w.{column} >= ? AND w.{column} < ?", list(bounds)
            c.execute(
                self.sql(f"SELECT id FROM {{migration_search_words}} w WHERE {where} LIMIT ?"),
                [*params, cap + 1],
            )
            candidates = [r["id"] for r in c.fetchall()]
            if len(candidates) <= cap:
                c.execute(
                    self.sql(
                        "SELECT id, customer_name, tenant_id FROM {migration_search} "
                        "WHERE id = ANY(?)"
                    ),
                    [candidates],
                )
                ids = sorted(
                    r["id"] for r in c.fetchall()
                    if needle in r["id"] or needle in r["customer_name"]
                    or needle in r["tenant_id"]
                )  # fmt: skip
                return "id = ANY(?)", [ids]
        return super().text_condition(c, needle, limit)

    def create_indexes(self) -> None:
        super().create_indexes()
        # After a rebuild: fresh statistics, so that the planner weighs the trigram index
        # against a walk in id order from the real table (autovacuum would, a minute later).
        with self.write() as c:
            for table in (*TABLES, SEARCH_WORDS):
                c.execute(self.sql(f"ANALYZE {{{table}}}"))

    def drop_indexes(self, views: list[str]) -> None:
        super().drop_indexes(views)
        if "migrations" in views:
            with self.write() as c:
                c.execute(f"DROP INDEX IF EXISTS {self._index_name(PG_TRGM_INDEX)}")
