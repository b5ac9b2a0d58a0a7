"""PostgreSQL drops the server's connections mid-run (pg_terminate_backend)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bench.server import serving
from tests.conftest import PG
from tests.faults.conftest import (
    Keys,
    Outcome,
    client,
    new_migration,
    note,
    stored_notes,
    wait_caught_up,
)

WORKERS = 4
TERMINATIONS = 3
RECOVERY_TIMEOUT = 15.0
BURST_TIMEOUT = 30.0


def terminate_backends(application_name: str) -> int:
    """Terminate the backends of one server only: those connected with its application_name
    (set through libpq's PGAPPNAME), never this connection or another test's."""
    with psycopg.connect(**PG, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s AND pid <> pg_backend_pid()",
            (PG["dbname"], application_name),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def backends(application_name: str) -> int:
    with psycopg.connect(**PG, autocommit=True, connect_timeout=5) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (PG["dbname"], application_name),
        ).fetchone()
    return count


@pytest.fixture
def served(
    postgres_only: dict[str, str], keys: Keys, tmp_path: Path
) -> Iterator[tuple[httpx.Client, str, Path]]:
    appname = f"csp-faults-{uuid.uuid4().hex[:12]}"
    log = tmp_path / "server.log"
    with (
        serving(postgres_only, extra_env={"PGAPPNAME": appname}, log=log) as (url, _),
        client(url, keys) as http,
    ):
        yield http, appname, log


def until_ok(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Retry one request until it is 2xx; every failure on the way must be a 503."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        r = http.request(method, url, **kwargs)
        if r.is_success:
            return r
        assert r.status_code == 503, r.text
        assert time.monotonic() < deadline, f"no recovery within {RECOVERY_TIMEOUT}s: {r.text}"
        time.sleep(0.1)


class TestPostgresDropsTheServersConnections:
    """Given a server whose PostgreSQL backends are terminated while requests are running."""

    @pytest.fixture
    def dropped(self, served: tuple[httpx.Client, str, Path]) -> dict[str, Any]:
        http, appname, log = served
        migrations = [new_migration(http)["id"] for _ in range(WORKERS)]
        wait_caught_up(http)
        assert backends(appname) > 0, "the server's connections are not identifiable"
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        stop = threading.Event()
        deadline = time.monotonic() + BURST_TIMEOUT

        def worker(i: int) -> None:
            mid = migrations[i]
            n = 0
            while not stop.is_set() and time.monotonic() < deadline:
                text = f"drop-{i}-{n}"
                if n % 3 == 2:
                    r = http.get("/v1/migrations", params={"limit": 5})
                    seen = Outcome(f"list-{i}-{n}", r.status_code, r.json())
                else:
                    r = http.post(
                        f"/v1/migrations/{mid}/events",
                        json=note(text),
                        headers={"Idempotency-Key": text},
                    )
                    seen = Outcome(text, r.status_code, r.json(), extra={"migration": mid})
                with lock:
                    outcomes.append(seen)
                n += 1

        terminated = []
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [pool.submit(worker, i) for i in range(WORKERS)]
            try:
                for _ in range(TERMINATIONS):
                    time.sleep(0.4)
                    terminated.append(terminate_backends(appname))
                time.sleep(0.4)
            finally:
                stop.set()
            for f in futures:
                f.result(timeout=BURST_TIMEOUT)
        return {
            "http": http,
            "appname": appname,
            "log": log,
            "migrations": migrations,
            "outcomes": outcomes,
            "terminated": terminated,
        }

    def test_requests_during_the_drop_succeed_or_answer_503_store_unavailable_never_500(
        self, dropped
    ):
        assert sum(dropped["terminated"]) > 0, "no backend was terminated"
        statuses = Counter(o.status for o in dropped["outcomes"])
        assert set(statuses) <= {200, 201, 503}, statuses
        for o in dropped["outcomes"]:
            if o.status == 503:
                assert o.body["error"] == "store_unavailable", o.body
        assert "unexpected error" not in dropped["log"].read_text()

    def test_the_server_recovers_without_a_restart(self, dropped):
        http = dropped["http"]
        mid = dropped["migrations"][0]
        until_ok(http, "POST", f"/v1/migrations/{mid}/events", json=note("recovered"))
        until_ok(http, "GET", "/v1/migrations")
        # Once recovered it stays recovered: consecutive writes and reads all succeed.
        for n in range(5):
            r = http.post(f"/v1/migrations/{mid}/events", json=note(f"steady {n}"))
            assert r.status_code == 201, r.text
            assert http.get(f"/v1/migrations/{mid}").status_code == 200
        assert until_ok(http, "GET", "/readyz").status_code == 200
        wait_caught_up(http, timeout=RECOVERY_TIMEOUT)

    def test_every_acknowledged_write_is_stored_once_and_a_503_write_at_most_once(
        self, store_env, dropped
    ):
        # A 503 write is in doubt: its commit may have landed before the connection dropped.
        # Retrying it with an Idempotency-Key is what makes it exactly once.
        for mid in dropped["migrations"]:
            texts = Counter(text for _, text, _ in stored_notes(store_env, mid))
            mine = [o for o in dropped["outcomes"] if o.extra.get("migration") == mid]
            assert all(texts[o.label] == 1 for o in mine if o.status == 201)
            assert all(count == 1 for count in texts.values()), texts
            answered = {o.label for o in mine if o.status in {201, 503}}
            assert set(texts) <= answered

    def test_a_503_write_retried_with_its_idempotency_key_is_then_stored_exactly_once(
        self, store_env, dropped
    ):
        http = dropped["http"]
        in_doubt = [o for o in dropped["outcomes"] if o.status == 503 and "migration" in o.extra]
        for o in in_doubt:
            retried = until_ok(
                http,
                "POST",
                f"/v1/migrations/{o.extra['migration']}/events",
                json=note(o.label),
                headers={"Idempotency-Key": o.label},
            )
            assert retried.status_code == 201, retried.text
            assert [e["text"] for e in retried.json()["events"]] == [o.label]
        written = {
            o.label
            for o in dropped["outcomes"]
            if o.status in {201, 503} and "migration" in o.extra
        }
        stored = Counter(
            text for mid in dropped["migrations"] for _, text, _ in stored_notes(store_env, mid)
        )
        assert set(stored) == written
        assert all(count == 1 for count in stored.values()), stored
