"""Concurrent writers and retries against a real uvicorn server, on both stores."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from bench.server import serving
from tests.faults.conftest import (
    Keys,
    Outcome,
    client,
    new_migration,
    note,
    stored_notes,
)

WRITERS = 8
ATTEMPTS_PER_WRITER = 5
RETRIES = 20
LOOP_TIMEOUT = 45.0


@pytest.fixture
def http(store_env: dict[str, str], keys: Keys) -> Iterator[httpx.Client]:
    with serving(store_env, workers=1) as (url, _proc), client(url, keys) as http:
        yield http


def run_all(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) in as many threads, released together; bounded in time."""
    barrier = threading.Barrier(count, timeout=10)

    def go(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(go, i) for i in range(count)]
        return [f.result(timeout=LOOP_TIMEOUT) for f in futures]


class TestEightWritersRaceOnOneMigrationWithIfMatch:
    """Given one migration and 8 writers that each read its ETag and write with If-Match."""

    @pytest.fixture
    def raced(self, http: httpx.Client) -> tuple[dict[str, Any], list[Outcome]]:
        created = new_migration(http)
        mid = created["id"]

        def writer(i: int) -> list[Outcome]:
            seen: list[Outcome] = []
            for n in range(ATTEMPTS_PER_WRITER):
                etag = http.get(f"/v1/migrations/{mid}").headers["ETag"]
                text = f"writer {i} attempt {n}"
                r = http.post(
                    f"/v1/migrations/{mid}/events",
                    json=note(text),
                    headers={"If-Match": etag, "X-Correlation-ID": f"w{i}-{n}"},
                )
                seen.append(Outcome(text, r.status_code, r.json(), extra={"if_match": etag}))
            return seen

        outcomes = [o for batch in run_all(WRITERS, writer) for o in batch]
        return created, outcomes

    def test_every_write_either_lands_or_is_refused_as_a_version_conflict(self, raced):
        _, outcomes = raced
        assert {o.status for o in outcomes} <= {201, 412}, Counter(o.status for o in outcomes)
        for o in outcomes:
            if o.status == 412:
                assert o.body["error"] == "version_conflict", o.body
        assert any(o.status == 201 for o in outcomes)

    def test_each_landed_write_got_the_version_after_the_one_it_matched(self, raced):
        created, outcomes = raced
        landed = [o for o in outcomes if o.status == 201]
        versions = sorted(o.body["version"] for o in landed)
        start = created["version"]
        assert versions == list(range(start + 1, start + 1 + len(landed)))
        for o in landed:
            assert o.body["version"] == int(o.extra["if_match"]) + 1

    def test_the_final_version_is_the_start_plus_the_landed_writes(self, http, raced):
        created, outcomes = raced
        landed = sum(o.status == 201 for o in outcomes)
        final = http.get(f"/v1/migrations/{created['id']}")
        assert final.json()["version"] == created["version"] + landed
        assert final.headers["ETag"] == str(created["version"] + landed)

    def test_no_update_is_lost_and_none_is_stored_twice(self, store_env, raced):
        created, outcomes = raced
        stored = stored_notes(store_env, created["id"])
        texts = Counter(text for _, text, _ in stored)
        landed = {o.label: o.body["version"] for o in outcomes if o.status == 201}
        refused = {o.label for o in outcomes if o.status == 412}
        assert set(texts) == set(landed)
        assert all(count == 1 for count in texts.values()), texts
        assert {text: version for version, text, _ in stored} == landed
        assert not refused & set(texts)


class TestOneEventRetriedTwentyTimesWithOneIdempotencyKey:
    """Given 20 concurrent retries of the same request, all with one Idempotency-Key."""

    def retry(self, http: httpx.Client, url: str, body: dict[str, Any]) -> list[Outcome]:
        key = f"retry-{uuid.uuid4().hex}"

        def attempt(i: int) -> Outcome:
            r = http.post(url, json=body, headers={"Idempotency-Key": key})
            return Outcome(
                str(i),
                r.status_code,
                r.json(),
                extra={"replayed": "Idempotent-Replayed" in r.headers},
            )

        return run_all(RETRIES, attempt)

    def test_an_event_is_stored_once_and_every_retry_gets_the_first_response(self, http, store_env):
        created = new_migration(http)
        url = f"/v1/migrations/{created['id']}/events"
        outcomes = self.retry(http, url, note("said once"))
        assert [o.status for o in outcomes] == [201] * RETRIES, [o.body for o in outcomes]
        first = outcomes[0].body
        assert all(o.body == first for o in outcomes)
        assert sum(not o.extra["replayed"] for o in outcomes) == 1
        assert first["version"] == created["version"] + 1
        stored = stored_notes(store_env, created["id"])
        assert [text for _, text, _ in stored] == ["said once"]
        assert http.get(f"/v1/migrations/{created['id']}").json()["version"] == first["version"]

    def test_a_relationship_request_creates_one_migration_and_every_retry_gets_its_id(self, http):
        tenant = f"once{uuid.uuid4().hex[:8]}.onmicrosoft.com"
        body = {
            "tenant_id": tenant,
            "customer_name": "Once Ltd",
            "customer_region": "europe",
            "channel": "direct",
        }
        outcomes = self.retry(http, "/v1/migrations", body)
        assert [o.status for o in outcomes] == [201] * RETRIES, [o.body for o in outcomes]
        ids = {o.body["id"] for o in outcomes}
        assert len(ids) == 1
        assert all(o.body == outcomes[0].body for o in outcomes)
        deadline = time.monotonic() + 10
        while True:
            listed = http.get("/v1/migrations", params={"tenant_id": tenant}).json()["items"]
            if listed or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [m["id"] for m in listed] == list(ids)
