"""Hardening of request bodies (issue 10, items 1 and 5): api/body.py and the 422 cap.

No credentials -> 401 before the body is read; bodies capped (413) from Content-Length and
while streaming; validation errors bounded; UTF-16/BOM bodies, duplicate JSON keys and an
empty Idempotency-Key refused with 400 and nothing stored. The flood test drives a real
uvicorn server while timing /healthz and sampling the server's memory.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from bench.server import serving
from projections.heads import Signer
from tests.api.conftest import SEED, Api, make_api
from tests.conftest import sqlite_env

CAP = 4096


@pytest.fixture
def capped(store_env: dict[str, str], tmp_path: Path) -> Iterator[Api]:
    """The app with request bodies capped at CAP bytes."""
    key = tmp_path / "ledger.key"
    Signer.generate(key)
    yield from make_api(store_env, ledger_key=key, max_body_bytes=CAP)


def raw(api: Api, url: str, body: bytes | Any, who: str | None = "sales_a", **headers: str):
    """POST bytes (or an iterator of bytes: sent chunked, without Content-Length)."""
    auth = api.auth(who) if who else {}
    return api.client.post(
        url, content=body, headers={**auth, "Content-Type": "application/json", **headers}
    )


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code, body
    return body


def no_migration_stored(api: Api) -> None:
    """The seed's tenant is still free: a first request for it opens a migration."""
    assert api.post("sales_a", "/v1/migrations", SEED).status_code == 201


# -- ASGI level: what the app reads of a body it refuses ----------------------------------


def call(app: Any, headers: dict[str, str], chunks: list[bytes]) -> tuple[list[dict], int]:
    """Run one POST /v1/migrations through the app; (messages sent, body chunks read)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/migrations",
        "raw_path": b"/v1/migrations",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    pending = list(chunks)
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        if not pending:
            await asyncio.sleep(3600)  # a client that never sends more
        read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=10)

    asyncio.run(run())
    return sent, read


def status_and_body(sent: list[dict]) -> tuple[int, dict[str, str], dict[str, Any]]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, json.loads(body)


@pytest.fixture
def bare_app(tmp_path: Path) -> Any:
    """The app without its lifespan: nothing here may need the store."""
    settings = Settings(demo_on_empty=False, max_body_bytes=CAP, ledger_key=tmp_path / "no.key")
    return create_app(settings, env=sqlite_env(tmp_path / "unused.db"))


class TestAWriteWithoutCredentials:
    def test_is_401_before_a_byte_of_its_body_is_read(self, bare_app):
        chunks = [b'{"a":' + b"1" * 1000 + b"}"] * 50
        sent, read = call(bare_app, {"content-type": "application/json"}, chunks)
        status, headers, body = status_and_body(sent)
        assert status == 401
        assert body["error"] == "unauthorized"
        assert set(body) == {"error", "message", "details"}
        assert headers["www-authenticate"] == "Bearer"
        assert headers["connection"] == "close"
        assert read == 0

    def test_an_empty_bearer_token_counts_as_none(self, bare_app):
        sent, read = call(bare_app, {"authorization": "Bearer   "}, [b"{}"])
        assert status_and_body(sent)[0] == 401
        assert read == 0

    def test_the_app_answers_401_in_the_same_shape(self, capped):
        # What the middleware imitates: the app's own refusal of a missing key.
        response = capped.client.get("/v1/migrations")
        body = assert_refused(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        refused = raw(capped, "/v1/migrations", json.dumps(SEED).encode(), who=None)
        assert refused.json()["error"] == body["error"]
        assert refused.json()["message"] == body["message"]
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.headers["X-Correlation-ID"]  # refused inside the request middleware
        no_migration_stored(capped)


class TestTheBodyCap:
    def test_a_content_length_above_the_cap_is_413_without_reading(self, bare_app):
        headers = {"authorization": "Bearer csp_whatever", "content-length": str(CAP + 1)}
        sent, read = call(bare_app, headers, [b"x" * (CAP + 1)])
        status, headers, body = status_and_body(sent)
        assert (status, body["error"]) == (413, "body_too_large")
        assert body["details"] == {"max_bytes": CAP}
        assert headers["connection"] == "close"
        assert read == 0

    def test_a_streamed_body_is_cut_off_once_past_the_cap(self, bare_app):
        # No Content-Length (chunked): 100 chunks of 1000 bytes, the cap passed at the 5th.
        chunks = [b" " * 1000] * 100
        sent, read = call(bare_app, {"authorization": "Bearer csp_whatever"}, chunks)
        status, _, body = status_and_body(sent)
        assert (status, body["error"]) == (413, "body_too_large")
        assert read == CAP // 1000 + 1

    def test_over_http_with_content_length(self, capped):
        body = json.dumps(SEED).encode().ljust(CAP + 1)
        assert_refused(raw(capped, "/v1/migrations", body), 413, "body_too_large")
        no_migration_stored(capped)

    def test_over_http_chunked(self, capped):
        def chunks() -> Iterator[bytes]:
            yield json.dumps(SEED).encode()
            for _ in range(20):
                yield b" " * 1000

        assert_refused(raw(capped, "/v1/migrations", chunks()), 413, "body_too_large")
        no_migration_stored(capped)

    def test_a_body_of_exactly_the_cap_is_accepted(self, capped):
        body = json.dumps(SEED).encode().ljust(CAP)  # JSON allows trailing whitespace
        assert len(body) == CAP
        assert raw(capped, "/v1/migrations", body).status_code == 201

    def test_the_default_is_one_mebibyte_and_the_setting_reads_the_environment(self, monkeypatch):
        assert Settings().max_body_bytes == 1_048_576
        monkeypatch.setenv("CSP_TRACKER_MAX_BODY_BYTES", "2048")
        assert Settings().max_body_bytes == 2048

    def test_the_default_cap_applies(self, api):
        body = json.dumps(SEED).encode().ljust(1_048_576 + 1)
        assert_refused(raw(api, "/v1/migrations", body), 413, "body_too_large")


class TestValidationErrorsAreBounded:
    def test_at_most_20_errors_and_echoed_names_cut_short(self, api):
        extra = {f"{i:04d}" + "x" * 5000: 0 for i in range(150)}  # about 750 kB
        response = api.post("sales_a", "/v1/migrations", {**SEED, **extra})
        body = assert_refused(response, 422, "validation_error")
        errors = body["details"]["errors"]
        assert len(errors) == 20
        assert body["details"]["count"] == 150
        for error in errors:
            assert all(len(str(part)) <= 201 for part in error["loc"]), error["loc"]
            assert len(error["msg"]) <= 201
        assert len(body["message"]) <= 401
        assert len(response.content) < 20_000
        no_migration_stored(api)


class TestBodiesThatWereAcceptedSilently:
    @pytest.mark.parametrize(
        "encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"]
    )
    def test_utf16_utf32_or_a_bom_is_400_invalid_encoding(self, api, encoding):
        body = json.dumps(SEED).encode(encoding)
        assert_refused(raw(api, "/v1/migrations", body), 400, "invalid_encoding")
        no_migration_stored(api)

    def test_a_duplicate_key_is_400_duplicate_key(self, api):
        text = json.dumps(SEED)[:-1] + ', "customer_name": "Someone Else"}'
        body = assert_refused(raw(api, "/v1/migrations", text.encode()), 400, "duplicate_key")
        assert body["details"] == {"key": "customer_name"}
        no_migration_stored(api)

    def test_a_duplicate_key_in_an_event_stores_nothing(self, api):
        migration_id = api.new_migration()["id"]
        text = '{"type": "note_added", "text": "one", "text": "two"}'
        url = f"/v1/migrations/{migration_id}/events"
        assert_refused(raw(api, url, text.encode(), who="admin_a"), 400, "duplicate_key")
        assert len(api.tracker.history(UUID(migration_id))) == 1

    def test_a_json_subtype_is_checked_too(self, api):
        text = json.dumps(SEED)[:-1] + ', "tenant_id": "other.onmicrosoft.com"}'
        response = raw(
            api, "/v1/migrations", text.encode(), **{"Content-Type": "application/merge+json"}
        )
        assert_refused(response, 400, "duplicate_key")

    def test_the_same_key_in_different_objects_is_fine(self):
        from api.body import _check_json, _Refusal

        _check_json(b'{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}], "c": "a"}')
        with pytest.raises(_Refusal, match="duplicate_key"):
            _check_json(b'{"a": 1, "b": [{"a": 1, "a": 2}]}')

    @pytest.mark.parametrize("value", ["", "   "])
    def test_an_empty_idempotency_key_is_400(self, api, value):
        response = api.post("sales_a", "/v1/migrations", SEED, **{"Idempotency-Key": value})
        assert_refused(response, 400, "empty_idempotency_key")
        no_migration_stored(api)

    def test_invalid_json_keeps_its_422(self, api):
        response = raw(api, "/v1/migrations", b'{"tenant_id": "a", "tenant_id"')
        assert_refused(response, 422, "validation_error")


# -- a flood against a real server ------------------------------------------------------

FLOOD_BYTES = 32 * 1024 * 1024
FLOOD_SECONDS = 3.0
CHUNK_FIELDS = 1000


def flood_body() -> Iterator[bytes]:
    """About FLOOD_BYTES of JSON with distinct keys, made as it is sent (64 kB at a time)."""
    template = b"".join(b'"CCCCCC-%04d-' % i + b"p" * 50 + b'":0,' for i in range(CHUNK_FIELDS))
    yield b"{"
    sent, n = 0, 0
    while sent < FLOOD_BYTES:
        chunk = template.replace(b"CCCCCC", b"%06d" % n)
        sent += len(chunk)
        n += 1
        yield chunk
    yield b'"end":0}'


def flood_length() -> int:
    return sum(len(c) for c in flood_body())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
class TestAFloodOfLargeBodies:
    """Given a real server, and a client posting 32 MB bodies for FLOOD_SECONDS: with no
    key (chunked), with a bogus key and a Content-Length, and with a bogus key chunked."""

    def test_memory_stays_bounded_and_healthz_stays_fast(self, tmp_path: Path):
        env = sqlite_env(tmp_path / "flood.db")  # no storage is involved: one store is enough
        length = flood_length()
        with serving(env) as (url, proc), httpx.Client(base_url=url, timeout=5) as probe:
            for _ in range(20):  # warm up, then measure from here
                probe.get("/healthz")
            baseline = rss_kib(proc.pid)
            variants = [
                {},
                {"Authorization": "Bearer csp_bogus", "Content-Length": str(length)},
                {"Authorization": "Bearer csp_bogus"},
            ]
            outcomes: list[tuple[int, str, float]] = []
            stop = time.monotonic() + FLOOD_SECONDS

            def flood() -> None:
                with httpx.Client(base_url=url, timeout=10) as http:
                    i = 0
                    while time.monotonic() < stop:
                        headers = {"Content-Type": "application/json", **variants[i % 3]}
                        started = time.monotonic()
                        try:
                            r = http.post("/v1/migrations", content=flood_body(), headers=headers)
                            outcome = str(r.status_code)
                        except httpx.TransportError as error:
                            outcome = type(error).__name__  # the server closed on us
                        outcomes.append((i % 3, outcome, time.monotonic() - started))
                        i += 1
                        time.sleep(0.02)

            flooder = threading.Thread(target=flood, daemon=True)
            flooder.start()
            latencies, peak = [], baseline
            while flooder.is_alive() and time.monotonic() < stop + 15:
                started = time.monotonic()
                assert probe.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                peak = max(peak, rss_kib(proc.pid))
                time.sleep(0.05)
            flooder.join(timeout=15)
            assert not flooder.is_alive(), "the flood did not finish"

        growth_mib = (peak - baseline) / 1024
        assert growth_mib < 48, f"server RSS grew by {growth_mib:.0f} MiB"
        # Before the guard: 135 MiB more, /healthz a median 0.3 s, 14 probes in 3 s.
        latencies.sort()
        assert len(latencies) >= 20, latencies
        assert latencies[len(latencies) // 2] < 0.1, latencies
        assert latencies[-1] < 0.5, latencies
        assert {variant for variant, _, _ in outcomes} == {0, 1, 2}, outcomes
        for variant, outcome, took in outcomes:
            expected = "401" if variant == 0 else "413"
            assert outcome == expected or not outcome.isdigit(), (variant, outcome)
            assert took < 2.0, (variant, outcome, took)
        assert any(o == "401" for _, o, _ in outcomes), outcomes


def test_flood_body_is_valid_json_of_the_announced_size():
    data = b"".join(flood_body())
    assert len(data) == flood_length() >= FLOOD_BYTES
    assert data.startswith(b'{"000000-0000-') and data.endswith(b'"end":0}')
