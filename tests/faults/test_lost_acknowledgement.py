"""A commit whose acknowledgement was lost: the library's insert retry meets its own events.

PostgreSQL's recorder retries `insert_events` after an OperationalError. When the first
attempt had committed, the retry collides with the events it stored itself. Simulated here on
both stores by inserting, then inserting the same events again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from tests.api.conftest import SEED, Api, make_api
from tests.faults.conftest import note


@pytest.fixture
def api(store_env: dict[str, str]) -> Iterator[Api]:
    yield from make_api(store_env)


def insert_twice(api: Api) -> None:
    """Every insert commits, then is retried as if its acknowledgement had been lost."""
    recorder = api.tracker.recorder
    original = recorder.insert_events

    def committed_then_retried(stored_events: Any, **kwargs: Any) -> Any:
        original(stored_events, **kwargs)
        return original(stored_events, **kwargs)  # the retry: IntegrityError

    recorder.insert_events = committed_then_retried


def collide_without_storing(api: Api) -> None:
    """Every insert fails as if another writer had stored that version first."""

    def collides(stored_events: Any, **kwargs: Any) -> Any:
        raise IntegrityError("duplicate key value violates unique constraint")

    api.tracker.recorder.insert_events = collides


class TestAWriteWhoseCommitAcknowledgementWasLost:
    """Given a migration, and a store that commits each write but reports a collision."""

    def test_the_write_is_answered_201_with_what_was_stored(self, api):
        created = api.new_migration()
        insert_twice(api)
        r = api.event(created["id"], note("landed"), **{"If-Match": str(created["version"])})
        assert r.status_code == 201, r.text
        assert r.json()["version"] == created["version"] + 1
        assert [e["text"] for e in r.json()["events"]] == ["landed"]
        history = api.tracker.history(UUID(created["id"]))
        assert [getattr(e, "text", None) for e in history] == [None, "landed"]

    def test_a_relationship_request_is_answered_201_with_its_migration(self, api):
        insert_twice(api)
        r = api.post("sales_a", "/v1/migrations", {**SEED, "tenant_id": "lost.onmicrosoft.com"})
        assert r.status_code == 201, r.text
        assert api.tracker.get(UUID(r.json()["id"])).version == r.json()["version"] == 1

    def test_a_write_that_collided_with_another_writers_events_is_still_412(self, api):
        created = api.new_migration()
        collide_without_storing(api)
        r = api.event(created["id"], note("lost"), **{"If-Match": str(created["version"])})
        assert r.status_code == 412, r.text
        assert r.json()["error"] == "version_conflict"
        assert len(api.tracker.history(UUID(created["id"]))) == 1
