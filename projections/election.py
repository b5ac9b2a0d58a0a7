"""Several processes, one PostgreSQL schema: race-free startup DDL, and one active projector.

Both rest on PostgreSQL advisory locks, keyed by (purpose, schema) so that two schemas (two
tenants of one database, or two test runs) never block each other. Each lock lives on a
connection of its own, opened directly (not from a pool: a pooled connection is recycled and
handed to other code, and a session-level lock would go with it).

- `ddl_lock(env)`: held, waiting for it, while a process builds its Tracker and ReadSide. The
  library creates its tables when a recorder is constructed (`PostgresFactory.*_recorder()` calls
  `recorder.create_table()` unless CREATE_TABLE is false): `CREATE TABLE IF NOT EXISTS` is not
  safe against a concurrent twin in PostgreSQL (both pass the "not exists" check, and the second
  insert into the catalogue fails on `pg_type_typname_nsp_index`), and the tracking recorder
  checks for its table, then inserts its `__migration__` row, in two steps another process can
  come between. Our own `ensure_schema` reads the layout version, then may drop and re-create the
  view tables. So we keep the library creating its tables (and its table migrations) and
  serialise every process's construction instead, rather than re-implementing its DDL with
  CREATE_TABLE=false.
- `PostgresElection`: the projector lock, `pg_try_advisory_lock`, held for as long as this
  process's projector is active. PostgreSQL releases it when that connection ends (the process
  dies, or the connection is lost), and a standby polling for it takes over.

On SQLite (one process per file) neither is needed: `ddl_lock` does nothing and `SoleProjector`
is always elected.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from eventsourcing.utils import Environment, resolve_topic

log = logging.getLogger(__name__)

PROJECTOR = "projector"
DDL = "ddl"
# How long startup waits for another process's DDL before failing (it takes milliseconds).
DDL_LOCK_TIMEOUT = "60s"
# The lock connection must notice a dead server or network quickly, or an active projector
# would go on believing it holds a lock PostgreSQL has already released.
_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms: unacknowledged data, e.g. a query into a dead network
}


def lock_key(purpose: str, schema: str) -> int:
    """The advisory lock key (signed 64-bit) for `purpose` in `schema`. Advisory locks are
    per database already; the schema is what tells two deployments in one database apart."""
    digest = hashlib.blake2b(f"csp-tracker:{purpose}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class PostgresTarget:
    """Where a direct connection goes, as the library's factory would connect for `env`."""

    host: str
    port: str
    dbname: str
    user: str
    password: str
    schema: str
    connect_timeout: int

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password,
            connect_timeout=self.connect_timeout,
            autocommit=True,
            # PGAPPNAME, when set, names the connection; otherwise this does.
            fallback_application_name="csp-tracker lock",
            **_KEEPALIVES,
        )

    def key(self, purpose: str) -> int:
        return lock_key(purpose, self.schema)


def postgres_target(env: Mapping[str, str], name: str) -> PostgresTarget | None:
    """The PostgreSQL database and schema the application or view store `name` uses with
    `env` (the same keys and precedence as the library), or None for another store."""
    e = Environment(name, {**os.environ, **env})
    if not (e.get("PERSISTENCE_MODULE") or "").startswith("eventsourcing.postgres"):
        return None
    topic = e.get("POSTGRES_GET_PASSWORD_TOPIC")
    password = resolve_topic(topic)() if topic else e.get("POSTGRES_PASSWORD", "")
    return PostgresTarget(
        host=e.get("POSTGRES_HOST", "127.0.0.1"),
        port=e.get("POSTGRES_PORT") or "5432",
        dbname=e.get("POSTGRES_DBNAME", ""),
        user=e.get("POSTGRES_USER", ""),
        password=password,
        schema=(e.get("POSTGRES_SCHEMA") or "").strip() or "public",
        connect_timeout=int(e.get("POSTGRES_CONNECT_TIMEOUT") or 30),
    )


@contextmanager
def ddl_lock(env: Mapping[str, str], names: tuple[str, ...]) -> Iterator[None]:
    """Hold the DDL lock of every schema the stores named `names` use (waiting for other
    processes' startup to finish), for the block that constructs them. Released at the end
    of the block, or by PostgreSQL if the process dies inside it."""
    targets = {t for t in (postgres_target(env, n) for n in names) if t is not None}
    with ExitStack() as stack:
        # Always in the same order, so that two processes never wait for each other.
        for target in sorted(targets, key=lambda t: (t.host, t.port, t.dbname, t.schema)):
            conn = stack.enter_context(target.connect())
            conn.execute(f"SET lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            conn.execute("SELECT pg_advisory_lock(%s)", (target.key(DDL),))
        yield


class Election(Protocol):
    """Which process's projector is active. Called from one thread (the elector)."""

    active: bool

    def try_acquire(self) -> bool:
        """Become active if nobody is; True if this process is (now) active."""
        ...

    def holds(self) -> bool:
        """Still active? False once the lock is lost (the connection broke)."""
        ...

    def release(self) -> None: ...

    def holder(self) -> dict[str, Any] | None:
        """Who is active, as far as the store can tell (None: nobody, or not known)."""
        ...


class SoleProjector:
    """SQLite: one process per file, so its projector is always the one."""

    active = False

    def try_acquire(self) -> bool:
        self.active = True
        return True

    def holds(self) -> bool:
        return self.active

    def release(self) -> None:
        self.active = False

    def holder(self) -> dict[str, Any] | None:
        return None


class PostgresElection:
    """The projector lock of one schema: a session-level advisory lock on a connection of its
    own, kept open while standing by (one `pg_try_advisory_lock` per poll, no reconnect) and
    while active (a `SELECT 1` per poll proves the session, and so the lock, still exists)."""

    def __init__(self, target: PostgresTarget) -> None:
        self.target = target
        self.key = target.key(PROJECTOR)
        self.active = False
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self.target.connect()
        return self._conn

    def try_acquire(self) -> bool:
        if self.active:
            return self.holds()
        try:
            row = self._connection().execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            self.active = bool(row.fetchone()[0])  # type: ignore[index]
        except psycopg.Error:
            self.release()
            raise
        return self.active

    def holds(self) -> bool:
        if not self.active or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self.release()  # the session is gone, and its lock with it
            return False
        return True

    def release(self) -> None:
        """Closing the session releases the lock (no unlock needed, none can be forgotten)."""
        self.active = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):  # closing a broken connection
                conn.close()

    def holder(self) -> dict[str, Any] | None:
        return projector_holder(self.target)


def projector_holder(target: PostgresTarget) -> dict[str, Any] | None:
    """The session holding `target`'s projector lock: its backend pid, application name,
    client address and start time; None when no projector is active."""
    unsigned = target.key(PROJECTOR) & 0xFFFF_FFFF_FFFF_FFFF
    with target.connect() as conn:
        row = conn.execute(
            # A bigint key shows in pg_locks as classid (high half), objid (low), objsubid 1.
            "SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, "
            "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        ).fetchone()
    if row is None:
        return None
    pid, application_name, client_addr, started = row
    return {
        "pid": pid,
        "application_name": application_name,
        "client_addr": client_addr,
        "since": started.isoformat() if started is not None else None,
    }
