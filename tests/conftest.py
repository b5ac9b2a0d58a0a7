"""Shared fixtures: every storage-touching test runs on SQLite and on a real PostgreSQL.

Each test gets its own SQLite file or its own PostgreSQL schema, dropped afterwards.
PostgreSQL tests skip when no server answers, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from api.settings import Settings
from domain.application import Tracker

PG = {
    "host": os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1"),
    "port": os.environ.get("TEST_POSTGRES_PORT", "5432"),
    "dbname": os.environ.get("TEST_POSTGRES_DBNAME", "test"),
    "user": os.environ.get("TEST_POSTGRES_USER", "postgres"),
    "password": os.environ.get("TEST_POSTGRES_PASSWORD", ""),
}
STORES = ["sqlite", "postgres"]


def _postgres_available() -> bool:
    try:
        with psycopg.connect(**PG, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def sqlite_env(path: Path) -> dict[str, str]:
    """The eventsourcing environment the service itself would build (api.settings)."""
    return Settings(store="sqlite", sqlite_path=path).eventsourcing_env()


def postgres_env(schema: str) -> dict[str, str]:
    return Settings(
        store="postgres",
        postgres_host=PG["host"],
        postgres_port=int(PG["port"]),
        postgres_db=PG["dbname"],
        postgres_user=PG["user"],
        postgres_password=PG["password"],
        postgres_schema=schema,
    ).eventsourcing_env()


@pytest.fixture(params=STORES)
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An eventsourcing environment for an empty store of the parametrised kind."""
    if request.param == "sqlite":
        yield sqlite_env(tmp_path / "tracker.db")
        return
    if not _postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required when CI=true but is not reachable")
        pytest.skip("no PostgreSQL server on this machine")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield postgres_env(schema)
    finally:
        with psycopg.connect(**PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def tracker(store_env: dict[str, str]) -> Iterator[Tracker]:
    app = Tracker(env=store_env)
    try:
        yield app
    finally:
        app.close()
