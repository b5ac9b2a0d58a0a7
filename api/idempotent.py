"""Writes run once per Idempotency-Key: the first answer is stored with the events it answers.

`once(...)` runs a tracker command and answers 201 with the stored events (`render.recorded`),
saving the answer as an idempotency record (domain/idempotency.py) in the SAME transaction as
the events when a key was given. A retry with the key and the same request gets that answer
again (`replayed`); with another request, 422 `idempotency_key_reused`. The single-event route,
its array form and each item of POST /v1/events:batch (which composes `replay` and `keep`
itself) all go through here: a key names one request, whichever route carried it.
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


def replay(
    tracker: Tracker, principal: Principal, key: str | None, fingerprint: str
) -> Answer | None:
    """The first answer to this request, if one was kept under `key`; 422
    `idempotency_key_reused` if the key was kept for another request."""
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


def keep(
    principal: Principal, key: str | None, fingerprint: str, body: dict[str, Any]
) -> list[Any]:
    """The idempotency record of a 201 with `body`, to save with its events (none without a
    key)."""
    if key is None:
        return []
    text = json.dumps(body, separators=(",", ":"))
    return [idempotency.IdempotencyRecord.record(principal.key_id, key, fingerprint, 201, text)]


def once(
    tracker: Tracker,
    principal: Principal,
    key: str | None,
    fingerprint: str,
    command: Callable[[], Recorded],
    *,
    minimal: bool = False,
) -> Answer:
    """Run `command` once per (API key, `key`); replay the first answer. Refusals propagate
    (a DomainError, or ApiError `idempotency_key_reused`) and store nothing. `minimal`: the
    caller answers without the state (`render.minimal`), so it is not rendered unless a key
    keeps the whole answer for replays."""
    if (first := replay(tracker, principal, key, fingerprint)) is not None:
        return first
    body: dict[str, Any] = {}

    def attach(migration: Migration) -> list[Any]:
        pending = cast("list[Migration.Event]", list(migration.pending_events))
        if minimal and key is None:
            body.update(render.stored(migration, pending))
            return []
        body.update(render.recorded(migration, pending, tracker.clock()))
        return keep(principal, key, fingerprint, body)

    try:
        with tracker.attaching(attach):
            command()
    except DomainError:
        # A concurrent retry with the same key may have stored first (its record collides with
        # ours, or its migration took the tenant claim): then answer as it was answered.
        if (first := replay(tracker, principal, key, fingerprint)) is not None:
            return first
        raise
    return Answer(201, body)
