"""Shared plumbing of the benchmarks: stores, timing, results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import psycopg

from api.settings import Settings

RESULTS = Path(__file__).parent / "results"


class _PGParams(TypedDict):
    host: str
    port: str
    dbname: str
    user: str
    password: str


PG: _PGParams = {
    "host": os.environ.get("BENCH_POSTGRES_HOST", "127.0.0.1"),
    "port": os.environ.get("BENCH_POSTGRES_PORT", "5432"),
    "dbname": os.environ.get("BENCH_POSTGRES_DBNAME", "test"),
    "user": os.environ.get("BENCH_POSTGRES_USER", "postgres"),
    "password": os.environ.get("BENCH_POSTGRES_PASSWORD", ""),
}


@contextlib.contextmanager
def store(kind: str) -> Iterator[dict[str, str]]:
    """An empty store of `kind` ("sqlite" or "postgres") as an eventsourcing env; removed after."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="csp-bench-") as tmp:
            yield Settings(store="sqlite", sqlite_path=Path(tmp) / "bench.db").eventsourcing_env()
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Settings(
            store="postgres",
            postgres_host=PG["host"],
            postgres_port=int(PG["port"]),
            postgres_db=PG["dbname"],
            postgres_user=PG["user"],
            postgres_password=PG["password"],
            postgres_schema=schema,
        ).eventsourcing_env()
    finally:
        with psycopg.connect(**PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class _Recording:
    """A cursor that notes each statement it runs (the rest is the cursor's own)."""

    def __init__(self, cursor: Any, calls: list[tuple[str, Any]]) -> None:
        self._cursor = cursor
        self._calls = calls

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._calls.append((sql, params))
        return self._cursor.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@contextlib.contextmanager
def statements(view: Any) -> Iterator[list[tuple[str, Any]]]:
    """Record the statements (SQL as sent, parameters) the view's reads run meanwhile."""
    calls: list[tuple[str, Any]] = []
    original = view.read

    @contextlib.contextmanager
    def read() -> Iterator[Any]:  # `fetch` reads through `read` too
        with original() as c:
            yield _Recording(c, calls)

    view.read = read
    try:
        yield calls
    finally:
        del view.read  # the class's own again


def explain(view: Any, sql: str, params: Any) -> list[str]:
    """The plan of one statement as sent: EXPLAIN QUERY PLAN (SQLite) or EXPLAIN (PostgreSQL)."""
    sqlite = view.placeholder == "?"
    with view.read() as c:
        c.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql, params)
        return [str(r[-1] if sqlite else next(iter(r.values()))) for r in c.fetchall()]


def rate(count: int, fn: Callable[[], Any]) -> float:
    """Items per second of one call of `fn` that processes `count` items."""
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def latencies(fn: Callable[[], Any], n: int) -> list[float]:
    """Wall-clock seconds of `n` calls of `fn`."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
        return str(v)

    lines = [f"\n### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    return text


def save_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str))
    return path
