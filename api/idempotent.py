"""Writes run once per Idempotency-Key: the first answer is stored with the events it answers.

`once(...)` runs a tracker command and answers 201 with the stored events (`render.recorded`),
saving the answer as an idempotency record (domain/idempotency.py) in the SAME transaction as
the events when a key was given. A retry with the key and the same request gets that answer
again (`replayed`); with another request, 422 `idempotency_key_reused`. `once_each(...)` does
the same for many single-event writes recorded together (the appender's batches of single
posts, the items of POST /v1/events:batch): a key names one request, whichever route carried it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from api import render
from api.deps import Principal
from api.errors import ApiError
from domain import idempotency
from domain.application import Recorded, Tracker
from domain.commands import Command
from domain.context import Context
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


def event_request_hash(migration_id: UUID, wire: Any) -> str:
    """The fingerprint of POST /v1/migrations/{id}/events with this body (as JSON values): an
    item of POST /v1/events:batch is the same request as the single post of its event."""
    return request_hash("POST events", str(migration_id), wire)


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


@dataclass
class Write:
    """One event for one migration, checked and ready to record as its own single post."""

    principal: Principal
    command: tuple[UUID, Context, Command]
    expected: int | None  # If-Match
    key: str | None  # Idempotency-Key
    fingerprint: str  # of the request, with a key ("" without)
    minimal: bool  # answer without the state (unless a key keeps the whole answer)
    body: dict[str, Any] = field(default_factory=dict)


def once_each(tracker: Tracker, writes: Sequence[Write]) -> list[Answer | Exception]:
    """Each write once per (API key, key), as `once` would run it alone, in order: a kept
    answer is replayed; the others are recorded in ONE transaction (`Tracker.execute_each`:
    a refused one is its own outcome, the others go on), each idempotency record with its
    events. A store failure is the outcome of each write it kept from being stored: every one
    not replayed, unless that transaction collided and the writes were being recorded one by
    one (then those stored before it keep their answers)."""
    # Two tries of one key in one transaction would collide there (and send every write one by
    # one): the writes from the second on are recorded after the first ones, in order.
    keys: set[tuple[str, str]] = set()
    for cut, write in enumerate(writes):
        if write.key is None:
            continue
        named = (write.principal.key_id, write.key)
        if named in keys:
            return once_each(tracker, writes[:cut]) + once_each(tracker, writes[cut:])
        keys.add(named)
    outcomes: list[Answer | Exception | None] = [None] * len(writes)
    todo: list[tuple[int, Write]] = []
    for index, write in enumerate(writes):
        try:
            first = replay(tracker, write.principal, write.key, write.fingerprint)
        except ApiError as reused:
            outcomes[index] = reused
            continue
        if first is None:
            todo.append((index, write))
        else:
            outcomes[index] = first

    def decided(position: int, migration: Migration, events: list[Migration.Event]) -> list[Any]:
        w = todo[position][1]
        # With a key, the whole answer is kept, so that a retry may ask for either form.
        w.body = (
            render.stored(migration, events)
            if w.minimal and w.key is None
            else render.recorded(migration, events, tracker.clock())
        )
        return keep(w.principal, w.key, w.fingerprint, w.body)

    results: list[Any] = []
    try:
        results = todo and tracker.execute_each(
            [w.command for _, w in todo], decided, [w.expected for _, w in todo]
        )
    except Exception as failure:  # the store's: nothing of these was stored
        results = [failure] * len(todo)
    for (index, w), result in zip(todo, results, strict=True):
        try:
            outcomes[index] = _outcome(tracker, w, result)
        except Exception as failure:  # the store's, after the commit: this write's alone
            outcomes[index] = failure
    return cast("list[Answer | Exception]", outcomes)


def _outcome(tracker: Tracker, w: Write, result: Any) -> Answer | Exception:
    if isinstance(result, list):  # its events, stored
        return Answer(201, w.body)
    if isinstance(result, DomainError):
        # A concurrent retry with the same key may have stored first (its record collided
        # with ours): then answer as it was answered.
        try:
            first = replay(tracker, w.principal, w.key, w.fingerprint)
        except ApiError as reused:
            return reused
        return result if first is None else first
    return cast(Exception, result)  # the store's failure
