"""The projector election of ReadSide.start(), in one process (the path `serve` takes).

On PostgreSQL, read sides of one schema elect one active projector through an advisory lock;
the others stand by and take over when it stops or loses its lock. On SQLite the one process
is always the active one. (tests/faults/test_failover.py does the same with real processes.)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from projections import ReadSide
from projections.election import PostgresElection, lock_key
from tests.conftest import PG
from tests.factories import ADMIN, record
from tests.projections.conftest import request

TAKEOVER = 5.0


def eventually(probe: Callable[[], Any], timeout: float = TAKEOVER) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def is_postgres(store_env: dict[str, str]) -> bool:
    return store_env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"


def test_each_schema_has_its_own_keys():
    keys = {lock_key(p, s) for p in ("projector", "ddl") for s in ("public", "t_1", "t_2")}
    assert len(keys) == 6
    assert all(-(2**63) <= k < 2**63 for k in keys)


class TestGivenOneReadSide:
    def test_it_is_off_until_started_then_active_then_off_again(self, app, read_side):
        assert read_side.role() == "off"
        read_side.start()
        assert read_side.role() == "active"  # at once: a lone process waits for no poll
        request(app)
        read_side.wait(timeout=5)
        read_side.stop()
        assert read_side.role() == "off"


class TestGivenTwoReadSidesOfOneSchema:
    @pytest.fixture
    def pair(self, app, read_side, store_env):
        if not is_postgres(store_env):
            pytest.skip("SQLite is one process per file: there is no one to elect")
        other = ReadSide(app, store_env, election_interval=0.2)
        read_side.election_interval = 0.2
        try:
            yield read_side, other
        finally:
            other.close()

    def test_one_is_active_the_other_stands_by_and_takes_over_when_it_stops(self, app, pair):
        first, second = pair
        first.start()
        second.start()
        assert (first.role(), second.role()) == ("active", "standby")
        holder = second.projector()["active"]
        assert holder is not None and holder["pid"] > 0
        mid = request(app)
        second.wait(timeout=5)  # the shared tracking row, moved by the active one

        first.stop()
        eventually(lambda: second.role() == "active")
        assert first.role() == "off"
        record(app, "note_added", mid, ADMIN, text="after the takeover")
        second.wait(timeout=5)
        assert second.lag()["audit"]["lag"] == 0

    def test_a_projector_whose_lock_connection_dies_stands_by(self, app, pair, caplog):
        first, second = pair
        first.start()
        second.start()
        election = first.election
        assert isinstance(election, PostgresElection) and election._conn is not None
        with caplog.at_level(logging.WARNING, logger="projections.readside"):
            with psycopg.connect(**PG, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (election._conn.info.backend_pid,))
            eventually(lambda: "projector lock lost" in caplog.text)
        # Either may win the lock now; exactly one does, and it projects.
        eventually(lambda: sorted([first.role(), second.role()]) == ["active", "standby"])
        request(app)
        first.wait(timeout=5)

    def test_another_schema_has_its_own_election(self, pair):
        first, _ = pair
        first.start()
        assert isinstance(first.election, PostgresElection)
        elsewhere = dataclasses.replace(first.election.target, schema="some_other_schema")
        other = PostgresElection(elsewhere)
        try:
            assert other.try_acquire()
        finally:
            other.release()
