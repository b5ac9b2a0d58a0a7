"""Concurrent batches on one migration with If-Match, against a real uvicorn server (two
workers, so two processes race in the store too), on both stores: in each round one batch wins,
every other gets 412, and the store holds the winners' events whole and in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby

import httpx
import pytest

from bench.server import serving
from tests.faults.conftest import Keys, client, new_migration, note, stored_notes

WRITERS = 4
ROUNDS = 5
BATCH = 5
TIMEOUT = 45.0


@pytest.fixture
def http(store_env: dict[str, str], keys: Keys) -> Iterator[httpx.Client]:
    with serving(store_env, workers=2) as (url, _proc), client(url, keys) as http:
        yield http


def race(http: httpx.Client, mid: str, round_: int, etag: str) -> list[httpx.Response]:
    """WRITERS batches of BATCH notes, all with If-Match `etag`, released together."""
    barrier = threading.Barrier(WRITERS, timeout=10)

    def writer(i: int) -> httpx.Response:
        batch = [note(f"r{round_} w{i} #{n}") for n in range(BATCH)]
        barrier.wait()
        return http.post(
            f"/v1/migrations/{mid}/events",
            json=batch,
            headers={"If-Match": etag, "X-Correlation-ID": f"r{round_}-w{i}"},
        )

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = [pool.submit(writer, i) for i in range(WRITERS)]
        return [f.result(timeout=TIMEOUT) for f in futures]


def test_one_batch_wins_each_round_and_nothing_interleaves(http, store_env):
    mid = new_migration(http)["id"]
    for round_ in range(ROUNDS):
        etag = http.get(f"/v1/migrations/{mid}").headers["ETag"]
        responses = race(http, mid, round_, etag)
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] + [412] * (WRITERS - 1), [r.text[:200] for r in responses]
        for response in responses:
            if response.status_code == 412:
                assert response.json()["error"] == "version_conflict"
            else:
                assert response.json()["version"] == int(etag) + BATCH

    notes = stored_notes(store_env, mid)  # also asserts the versions are contiguous
    assert len(notes) == ROUNDS * BATCH
    # Each winner's notes are consecutive versions, in the order sent, under its correlation id.
    runs = [list(group) for _, group in groupby(notes, key=lambda n: n[2])]
    assert len(runs) == ROUNDS, [r[0][2] for r in runs]
    for run in runs:
        versions = [version for version, _, _ in run]
        assert versions == list(range(versions[0], versions[0] + BATCH))
        assert [text.rsplit("#", 1)[1] for _, text, _ in run] == [str(n) for n in range(BATCH)]


def test_concurrent_batches_across_migrations_store_every_item_once(http, store_env):
    """Writers in two processes send batches over the same migrations: their one-transaction
    saves collide, and the losers fall back to one item at a time; every item lands once."""
    mids = [new_migration(http)["id"] for _ in range(4)]
    barrier = threading.Barrier(WRITERS, timeout=10)

    def writer(i: int) -> list[httpx.Response]:
        barrier.wait()
        responses = []
        for n in range(3):
            items = [
                {
                    "migration_id": mids[(i + k) % len(mids)],
                    "event": note(f"w{i} r{n} k{k}"),
                    "idempotency_key": f"w{i}-r{n}-k{k}",
                }
                for k in range(20)
            ]
            responses.append(http.post("/v1/events:batch", json=items))
        return responses

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = [pool.submit(writer, i) for i in range(WRITERS)]
        responses = [r for f in futures for r in f.result(timeout=TIMEOUT)]
    assert {r.status_code for r in responses} == {200}
    statuses = [item["status"] for r in responses for item in r.json()["items"]]
    assert statuses == [201] * (WRITERS * 3 * 20)
    texts = [text for mid in mids for _, text, _ in stored_notes(store_env, mid)]
    assert len(texts) == len(set(texts)) == WRITERS * 3 * 20
