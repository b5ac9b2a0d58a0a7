"""The read side's tables, the same on SQLite and PostgreSQL.

Column types are the common subset of both stores (TEXT, BIGINT, INTEGER 0/1 for flags, ISO-8601
text for dates and times, which sorts like the values it spells), so one set of statements, with
only the table names qualified differently, serves both.
"""

from __future__ import annotations

from collections.abc import Callable

# Each view and the tables it owns. `rebuild(view)` empties exactly these.
VIEWS: dict[str, tuple[str, ...]] = {
    "migrations": ("migrations", "migration_risks", "migration_search"),
    "audit": ("audit",),
    "summary": ("summary", "summary_dates"),
    "ledger": ("ledger_leaves", "ledger_nodes"),
}
TABLES: tuple[str, ...] = tuple(t for tables in VIEWS.values() for t in tables)
TABLE_PREFIX = "view_"
# The layout of the view tables. Views built with another layout are dropped and rebuilt from
# the events when the read side starts (they are derived data), unless `ViewStore.UPGRADES` has
# a step from it (adding a table filled from the others is faster than re-projecting the log);
# `schema` records the layout. 4: `migration_search` and its trigram index.
SCHEMA_VERSION = 4
SCHEMA_TABLE = "schema"
HEADS_TABLE = "ledger_heads"
# Leading primary-key columns of each table (a total order of its rows), for comparisons.
KEY_COLUMNS: dict[str, int] = {"summary_dates": 3}

_TABLES = {
    "migrations": """(
        id TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        customer_name TEXT NOT NULL,
        customer_region TEXT NOT NULL,
        stage TEXT NOT NULL,
        closed INTEGER NOT NULL,
        original_licenses BIGINT NOT NULL,
        provisioned_licenses BIGINT NOT NULL,
        original_statuses TEXT NOT NULL,
        next_term_end TEXT,
        auto_renew_term_end TEXT,
        expired_unreplaced_first TEXT,
        expired_unreplaced_last TEXT,
        admin_access_end TEXT,
        version BIGINT NOT NULL,
        last_event_type TEXT NOT NULL,
        last_event_at TEXT NOT NULL,
        state TEXT NOT NULL
    )""",
    # The text `?q=` searches, lowered by Python's str.lower() (SQLite's lower() folds ASCII
    # only), one row per migration, written when the migration first appears: its own table
    # so that the per-event updates of `migrations` never touch the trigram index. `position`
    # is the log position of the migration's first event (unique, and the same however the
    # log was batched): the row id of the SQLite full-text index. See docs/projections.md.
    "migration_search": """(
        id TEXT PRIMARY KEY,
        position BIGINT NOT NULL UNIQUE,
        customer_name TEXT NOT NULL,
        tenant_id TEXT NOT NULL
    )""",
    "migration_risks": """(
        migration_id TEXT NOT NULL,
        risk TEXT NOT NULL,
        PRIMARY KEY (migration_id, risk)
    )""",
    "audit": """(
        position BIGINT PRIMARY KEY,
        recorded_at TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        migration_id TEXT NOT NULL,
        partner_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        principal TEXT NOT NULL,
        role TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "summary": """(
        partner_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (partner_id, metric)
    )""",
    # How many open migrations (or their unreplaced active originals) have each date: the
    # time-dependent summary counts are sums over a range of days (see rows.summary_dates).
    "summary_dates": """(
        partner_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        day TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (partner_id, kind, day)
    )""",
}

_TABLES["ledger_leaves"] = """(
        idx BIGINT PRIMARY KEY,
        position BIGINT NOT NULL UNIQUE,
        hash TEXT NOT NULL
    )"""
# Every perfect subtree above the leaves: (level, index) covers leaves [index * 2^level, ...).
_TABLES["ledger_nodes"] = """(
        level INTEGER NOT NULL,
        idx BIGINT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (level, idx)
    )"""
# Signed tree heads are attestations made at a time, not derived data: no rebuild empties them.
_TABLES[HEADS_TABLE] = """(
        tree_size BIGINT PRIMARY KEY,
        root_hash TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL
    )"""

# (index suffix, table, columns): every dashboard filter, and every audit filter paired with
# the position so that "filter, then page by cursor" is one index range scan.
_INDEXES = [
    ("partner", "migrations", "partner_id, id"),
    ("stage", "migrations", "stage, id"),
    ("tenant", "migrations", "tenant_id, id"),
    ("next_term_end", "migrations", "next_term_end"),
    ("risk", "migration_risks", "risk, migration_id"),
    ("partner", "audit", "partner_id, position"),
    ("tenant", "audit", "tenant_id, position"),
    ("migration", "audit", "migration_id, position"),
    ("principal", "audit", "principal, position"),
    ("role", "audit", "role, position"),
    ("type", "audit", "event_type, position"),
    ("recorded", "audit", "recorded_at, position"),
]


# SQLite: the search table is clustered by id (no rowid), so a walk in id order reads it in
# order and a lookup by position is one covering index probe.
SQLITE_TABLE_OPTIONS = {"migration_search": " WITHOUT ROWID"}


def create_statements(
    qualified: Callable[[str], str], options: dict[str, str] | None = None
) -> list[str]:
    """CREATE statements; `qualified(table)` gives the name as used in SQL; `options` adds
    store-specific table options (SQLITE_TABLE_OPTIONS)."""
    options = options or {}
    statements = [
        f"CREATE TABLE IF NOT EXISTS {qualified(t)} {ddl}{options.get(t, '')}"
        for t, ddl in _TABLES.items()
    ]
    return statements + index_statements(qualified)


# -- text search (`?q=`) -------------------------------------------------------------------
SEARCH_TABLE = "migration_search"
SEARCH_COLUMNS = ("id", "position", "customer_name", "tenant_id")
# The shortest text a trigram index can answer: shorter texts are matched by a scan of the
# search table (see ViewStore.text_condition).
TRIGRAM = 3
# SQLite: an FTS5 index of the search table (external content: it stores only the index),
# with the trigram tokenizer (SQLite >= 3.34), case-sensitive because the text is lowered
# already: a phrase query of 3+ characters is then exactly "contains" on lowered text.
SQLITE_FTS = "migration_search_fts"


def sqlite_fts_statement(qualified: Callable[[str], str]) -> str:
    return (
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {qualified(SQLITE_FTS)} USING fts5("
        "id, customer_name, tenant_id, "
        f"content='{qualified(SEARCH_TABLE)}', content_rowid='position', "
        "tokenize='trigram case_sensitive 1')"
    )


# PostgreSQL: one GIN index of pg_trgm's trigrams over the three columns; `LIKE '%text%'` on
# any of them is answered from it (a BitmapOr of three index scans), rechecked exactly. Without
# `fastupdate`: GIN's default parks new entries in a pending list, which every search reads in
# full until a VACUUM merges it (up to gin_pending_list_limit, 4 MB: measured at 1 M events with
# 760 pending rows, an id search read 209 pages per column and took 3.5 ms instead of 1.2).
# A search row is written once per migration, so inserting straight into the index costs little.
PG_TRGM_INDEX = f"{TABLE_PREFIX}{SEARCH_TABLE}_trgm"


def pg_trgm_index_statement(qualified: Callable[[str], str], extension_schema: str) -> str:
    ops = f'"{extension_schema}".gin_trgm_ops'
    return (
        f"CREATE INDEX IF NOT EXISTS {PG_TRGM_INDEX} ON {qualified(SEARCH_TABLE)} "
        f"USING gin (customer_name {ops}, tenant_id {ops}, id {ops}) WITH (fastupdate = off)"
    )


# PostgreSQL: the words of each search row (rows.search_words), for texts whose trigrams are
# in most rows ("customer 77 " in a store where every name is "Customer N Ltd"): a word the
# text must contain whole, or begin or end with (rows.needle_words), is looked up in a B-tree
# at a cost that does not grow with the table, where the GIN index intersects posting lists
# that do. `drow` is the word reversed (a suffix is a prefix of it); "C" collation, so that a
# prefix is a range of the index; both indexes hold the id, so a probe reads no table rows.
# Like the SQLite full-text index it is derived from the
# search table alone (see PostgresViews.ensure_search_index).
SEARCH_WORDS = "migration_search_words"
SEARCH_WORDS_COLUMNS = ("word", "drow", "id")


def pg_words_statements(qualified: Callable[[str], str]) -> list[str]:
    table = qualified(SEARCH_WORDS)
    return [
        f'CREATE TABLE IF NOT EXISTS {table} (word TEXT COLLATE "C" NOT NULL, '
        'drow TEXT COLLATE "C" NOT NULL, id TEXT NOT NULL, PRIMARY KEY (word, id))',
        f"CREATE INDEX IF NOT EXISTS {TABLE_PREFIX}{SEARCH_WORDS}_drow ON {table} (drow, id)",
    ]


def index_statements(
    qualified: Callable[[str], str], tables: tuple[str, ...] = TABLES
) -> list[str]:
    return [
        f"CREATE INDEX IF NOT EXISTS {TABLE_PREFIX}{table}_{suffix} "
        f"ON {qualified(table)} ({columns})"
        for suffix, table, columns in _INDEXES
        if table in tables
    ]


def drop_index_statements(
    qualified_index: Callable[[str], str], tables: tuple[str, ...] = TABLES
) -> list[str]:
    """Secondary indexes are dropped while a rebuild refills their tables and created again
    after: one sorted build instead of a million random B-tree inserts."""
    return [
        f"DROP INDEX IF EXISTS {qualified_index(f'{TABLE_PREFIX}{table}_{suffix}')}"
        for suffix, table, _ in _INDEXES
        if table in tables
    ]
