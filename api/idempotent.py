"""Writes run once per Idempotency-Key: the first answer is stored with the events it answers.

`once(...)` runs a tracker command and answers 201 with the stored events (`render.recorded`),
saving the answer as an idempotency record (domain/idempotency.py) in the SAME transaction as
the events when a key was given. A retry with the key and the same request gets that answer
again (`replayed`); with another request, 422 `idempotency_key_reused`. The single-event route,
its array form and each item of POST /v1/events:batch all go through here: a key names one
request, whichever route carried it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from api import render
from api.deps import Principal
from api.errors import ApiError
from domain import idempotency
from domain.application import Recorded, Tracker
from domain.errors import DomainError
from domain.migration import Migration


@dataclass(frozen=True)
class Answer:
    """What a write answered: its status and JSON body, and whether it is a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def request_hash(*parts: Any) -> str:
    """The fingerprint of a request that an idempotency record is kept for."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def once(
    tracker: Tracker,
    principal: Principal,
    key: str | None,
    fingerprint: str,
    command: Callable[[], Recorded],
) -> Answer:
    """Run `command` once per (API key, `key`); replay the first answer. Refusals propagate
    (a DomainError, or ApiError `idempotency_key_reused`) and store nothing."""

    def replay() -> Answer | None:
        if key is None:
            return None
        record = idempotency.find(tracker, principal.key_id, key)
        if record is None:
            return None
        if record.request_hash != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
                idempotency_key=key,
            )
        return Answer(record.status, json.loads(record.body), replayed=True)

    if (first := replay()) is not None:
        return first
    body: dict[str, Any] = {}

    def attach(migration: Migration) -> list[Any]:
        pending = cast("list[Migration.Event]", list(migration.pending_events))
        body.update(render.recorded(migration, pending, tracker.clock()))
        if key is None:
            return []
        text = json.dumps(body, separators=(",", ":"))
        record = idempotency.IdempotencyRecord.record
        return [record(principal.key_id, key, fingerprint, 201, text)]

    try:
        with tracker.attaching(attach):
            command()
    except DomainError:
        # A concurrent retry with the same key may have stored first (its record collides with
        # ours, or its migration took the tenant claim): then answer as it was answered.
        if (first := replay()) is not None:
            return first
        raise
    return Answer(201, body)
