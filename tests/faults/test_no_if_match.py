"""Writers that send no If-Match never get 412 (issue 10, item 7), on both stores.

Eight writers post notes to ONE migration without an expected version, through the Tracker
(one per process, as the API holds it) and over HTTP against a real server: nobody is
refused and every note is stored exactly once. When another process saves first, the
command is decided again on what it stored (a bounded retry), its idempotency record made
afresh; a stale expected version is still a conflict.
"""

from __future__ import annotations

import contextvars
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import httpx
import pytest

from bench.server import serving
from domain import idempotency
from domain.application import Tracker
from domain.commands import Command
from domain.errors import DomainError, VersionConflict
from domain.migration import Migration
from tests.factories import ADMIN, start
from tests.faults.conftest import PARTNER, Keys, client, new_migration, note, stored_notes

WRITERS = 8
NOTES = 6
TIMEOUT = 60.0


def run_all(work: Callable[[int], Any]) -> list[Any]:
    """work(0..WRITERS-1) in as many threads, released together; bounded in time."""
    barrier = threading.Barrier(WRITERS, timeout=10)

    def go(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = [pool.submit(go, i) for i in range(WRITERS)]
        return [f.result(timeout=TIMEOUT) for f in futures]


def texts() -> list[str]:
    return [f"writer {i} note {n}" for i in range(WRITERS) for n in range(NOTES)]


@pytest.fixture
def migration_id(tracker: Tracker) -> UUID:
    tracker.register_partner(PARTNER, "Fabrikam", "europe")
    return start(
        tracker,
        ADMIN,
        partner_id=PARTNER,
        tenant_id="contoso.onmicrosoft.com",
        customer_name="Contoso Ltd",
        customer_region="europe",
        channel="direct",
    ).migration.id


def add_note(tracker: Tracker, migration_id: UUID, text: str, **kwargs: Any) -> Any:
    return tracker.execute(migration_id, ADMIN, Command("note_added", {"text": text}), **kwargs)


def stored_texts(tracker: Tracker, migration_id: UUID) -> list[str]:
    events = tracker.history(migration_id)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    return [e.text for e in events if hasattr(e, "text")]


class TestEightWritersThroughTheTracker:
    def test_none_is_refused_and_every_note_is_stored_once(self, tracker, migration_id):
        def writer(i: int) -> list[str]:
            refused = []
            for n in range(NOTES):
                try:
                    add_note(tracker, migration_id, f"writer {i} note {n}")
                except DomainError as error:
                    refused.append(error.code)
            return refused

        refused = [code for codes in run_all(writer) for code in codes]
        assert refused == [], Counter(refused)
        assert Counter(stored_texts(tracker, migration_id)) == Counter(texts())

    def test_with_idempotency_records_attached_each_is_stored_with_its_note(
        self, tracker, migration_id
    ):
        def writer(i: int) -> None:
            for n in range(NOTES):
                text = f"writer {i} note {n}"

                def record(migration: Migration, text: str = text) -> list[Any]:
                    body = json.dumps({"version": migration.version, "text": text})
                    return [idempotency.IdempotencyRecord.record("k", text, "h", 201, body)]

                with tracker.attaching(record):
                    add_note(tracker, migration_id, text)

        run_all(writer)
        stored = {
            e.originator_version: e.text
            for e in tracker.history(migration_id)
            if hasattr(e, "text")
        }
        assert Counter(stored.values()) == Counter(texts())
        for text in texts():
            body = json.loads(idempotency.find(tracker, "k", text).body)
            assert stored[body["version"]] == text


@pytest.fixture
def other_process(store_env: dict[str, str]) -> Iterator[Tracker]:
    """A second Tracker on the same store: a writer in another process."""
    other = Tracker(env=store_env)
    try:
        yield other
    finally:
        other.close()


def another_writer_first(tracker: Tracker, action: Callable[[], Any], times: int = 1) -> None:
    """Run `action` (a save by another process: in a context of its own, so it sees none of
    this thread's context variables) just before each of the tracker's next `times` store
    transactions, before this process takes the store's writers' lock (SQLite's, shared with
    other processes: domain.file_lock): those transactions then collide with what it stored."""
    original = tracker.commits.store_lock
    left = [times]

    def store_lock() -> Any:
        if left[0] > 0:
            left[0] -= 1
            contextvars.Context().run(action)
        return original()

    tracker.commits.store_lock = store_lock


class TestWhenAnotherProcessSavesFirst:
    def test_the_command_is_decided_again_and_lands(self, tracker, migration_id, other_process):
        another_writer_first(tracker, lambda: add_note(other_process, migration_id, "theirs"), 3)
        made: list[int] = []

        def record(migration: Migration) -> list[Any]:
            made.append(migration.version)
            body = json.dumps({"version": migration.version})
            return [idempotency.IdempotencyRecord.record("k", "ours", "h", 201, body)]

        with tracker.attaching(record):
            recorded = add_note(tracker, migration_id, "ours")
        assert [e.text for e in recorded.events] == ["ours"]
        assert recorded.migration.version == 5  # requested, 3 of theirs, ours
        assert made == [2, 3, 4, 5]  # the record was made afresh for every decision
        assert json.loads(idempotency.find(tracker, "k", "ours").body) == {"version": 5}
        assert stored_texts(tracker, migration_id) == ["theirs"] * 3 + ["ours"]

    def test_the_retries_are_bounded(self, tracker, migration_id, other_process):
        another_writer_first(tracker, lambda: add_note(other_process, migration_id, "t"), 100)
        with pytest.raises(VersionConflict):
            add_note(tracker, migration_id, "ours")
        stored = stored_texts(tracker, migration_id)
        assert "ours" not in stored
        assert 2 <= len(stored) <= 20, len(stored)

    def test_a_rule_refusal_on_what_it_stored_is_the_answer(
        self, tracker, migration_id, other_process
    ):
        accept = Command("invitation_accepted", {"accepted_by": "admin@contoso.com"})
        another_writer_first(tracker, lambda: other_process.execute(migration_id, ADMIN, accept))
        with pytest.raises(DomainError) as refused:
            tracker.execute(migration_id, ADMIN, accept)
        assert not isinstance(refused.value, VersionConflict)
        assert refused.value.code == "already_accepted"
        assert len(tracker.history(migration_id)) == 2

    def test_a_stale_expected_version_is_still_a_conflict(
        self, tracker, migration_id, other_process
    ):
        another_writer_first(tracker, lambda: add_note(other_process, migration_id, "theirs"))
        with pytest.raises(VersionConflict):
            add_note(tracker, migration_id, "ours", expected_version=1)
        assert stored_texts(tracker, migration_id) == ["theirs"]

    def test_a_collision_on_an_attached_record_alone_is_not_retried(
        self, tracker, migration_id, other_process
    ):
        # A concurrent retry with the same Idempotency-Key stored its record (and nothing on
        # this migration): deciding again could only collide again.
        def theirs() -> None:
            other_process.save(idempotency.IdempotencyRecord.record("k", "same", "h", 201, "{}"))

        another_writer_first(tracker, theirs)
        made: list[int] = []

        def record(migration: Migration) -> list[Any]:
            made.append(migration.version)
            return [idempotency.IdempotencyRecord.record("k", "same", "h", 201, "{}")]

        with tracker.attaching(record), pytest.raises(VersionConflict):
            add_note(tracker, migration_id, "ours")
        assert made == [2]
        assert stored_texts(tracker, migration_id) == []


class TestEightWritersOverHttp:
    """A real server (one worker); half the posts carry an Idempotency-Key."""

    @pytest.fixture
    def http(self, store_env: dict[str, str], keys: Keys) -> Iterator[httpx.Client]:
        with serving(store_env, workers=1) as (url, _proc), client(url, keys) as http:
            yield http

    def test_none_gets_412_and_every_note_is_stored_once(self, http, store_env):
        mid = new_migration(http)["id"]

        def writer(i: int) -> list[tuple[str, int, Any]]:
            seen = []
            for n in range(NOTES):
                text = f"writer {i} note {n}"
                headers = {"X-Correlation-ID": f"w{i}-{n}"}
                if n % 2:
                    headers["Idempotency-Key"] = f"key-{uuid.uuid4().hex}"
                r = http.post(f"/v1/migrations/{mid}/events", json=note(text), headers=headers)
                seen.append((text, r.status_code, r.json()))
            return seen

        outcomes = [o for batch in run_all(writer) for o in batch]
        statuses = Counter(status for _, status, _ in outcomes)
        assert statuses == {201: WRITERS * NOTES}, statuses
        for text, _, body in outcomes:
            assert [e["text"] for e in body["events"]] == [text]
        stored = stored_notes(store_env, mid)
        assert Counter(text for _, text, _ in stored) == Counter(texts())
        by_text = {text: version for version, text, _ in stored}
        for text, _, body in outcomes:
            assert body["version"] == by_text[text]
