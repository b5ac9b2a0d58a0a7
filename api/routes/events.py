"""POST /v1/events:batch: events for many migrations in one request, a result per item.

Not atomic (a bulk API): each item is decided as the single post of its event (POST
/v1/migrations/{id}/events) would be, in the order of the request, so items on one migration
see the ones before them; a refused item is its own result, with the status the single post
would have answered, and the other items go on. What the items record is stored in one
transaction (Tracker.execute_each), so a 503 means all of it or none of it landed (were that
save to collide with another writer, the items run one by one instead). The request as a whole
is refused (nothing stored) only before any item runs, when it breaks the schema: an item
malformed (422 `validation_error`, its `loc` naming the item's index; or, for a check the wire
answers with the domain's code such as `invalid_replaces`, `details.index`), more than 100
items; or with a read-only key (403), or none (401).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api import render
from api.deps import CorrelationId, CurrentPrincipal, Principal, TrackerDep
from api.errors import ApiError, errors_for, jsonable, status_of
from api.idempotent import Answer, keep, replay
from api.routes.migrations import event_request_hash
from api.schemas import BatchIn, BatchItem, BatchResults, read_items
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context
from domain.errors import DomainError
from domain.migration import Migration

router = APIRouter(prefix="/v1", tags=["migrations"])


@router.post(
    "/events:batch",
    response_model=BatchResults,
    summary="Record events across migrations (a result per item)",
    responses=errors_for(400, 401, 403, 413, 422, 503),
)
def record_batch(
    body: Annotated[
        BatchIn,
        Body(description="1 to 100 items, each an event for one migration, applied in order"),
    ],
    tracker: TrackerDep,
    principal: CurrentPrincipal,
    correlation_id: CorrelationId,
) -> JSONResponse:
    """Record each item as its own single post would be, in order; 200 with one result per
    item: 201 with its stored events, or its refusal in the error shape. Not atomic."""
    items = read_items(body)  # before anything else, as FastAPI reads a body
    principal.ensure_writer()
    results: dict[int, dict[str, Any]] = {}
    todo: list[_Todo] = []
    for index, item in enumerate(items):
        todo_item = _Todo.of(index, item, principal, correlation_id)
        try:
            first = replay(tracker, principal, item.idempotency_key, todo_item.fingerprint)
        except ApiError as refusal:  # idempotency_key_reused
            results[index] = _refused(index, refusal)
            continue
        if first is not None:
            results[index] = _stored(index, first)
        else:
            todo.append(todo_item)

    bodies: dict[int, dict[str, Any]] = {}

    def decided(position: int, migration: Migration, events: list[Migration.Event]) -> list[Any]:
        it = todo[position]
        key = it.item.idempotency_key
        # With a key, the single post's whole answer is kept, so that any route may replay it.
        body = (
            render.stored(migration, events)
            if key is None
            else render.recorded(migration, events, tracker.clock())
        )
        bodies[it.index] = body
        return keep(principal, key, it.fingerprint, body)

    outcomes = tracker.execute_each([it.command for it in todo], decided)
    for it, outcome in zip(todo, outcomes, strict=True):
        if not isinstance(outcome, DomainError):
            results[it.index] = _stored(it.index, Answer(201, bodies[it.index]))
            continue
        results[it.index] = _after_refusal(tracker, principal, it, outcome)
    # 200 whatever the items' outcomes: the request was understood and every item answered
    # in `items` (207 Multi-Status is WebDAV's, with an XML body of its own).
    return JSONResponse({"items": [results[index] for index in range(len(items))]})


@dataclass(frozen=True)
class _Todo:
    """An item to record: its command and the fingerprint its idempotency key is kept for."""

    index: int
    item: BatchItem
    command: tuple[UUID, Context, Command]
    fingerprint: str  # "" without an idempotency key (nothing to compare it with)

    @classmethod
    def of(cls, index: int, item: BatchItem, principal: Principal, correlation_id: str) -> _Todo:
        event = item.event
        ctx = Context(
            principal.name, principal.role, correlation_id, event.occurred_at, principal.partner_id
        )
        command = Command(event.type, event.model_dump(exclude={"type", "occurred_at"}))
        fingerprint = (
            ""
            if item.idempotency_key is None
            else event_request_hash(item.migration_id, event.model_dump(mode="json"))
        )
        return cls(index, item, (item.migration_id, ctx, command), fingerprint)


def _after_refusal(
    tracker: Tracker, principal: Principal, it: _Todo, refusal: DomainError
) -> dict[str, Any]:
    """A refused item's result; unless a concurrent retry with its key stored first (its
    record collided with ours): then the answer that retry got."""
    try:
        first = replay(tracker, principal, it.item.idempotency_key, it.fingerprint)
    except ApiError as reused:
        return _refused(it.index, reused)
    return _refused(it.index, refusal) if first is None else _stored(it.index, first)


def _stored(index: int, answer: Answer) -> dict[str, Any]:
    body = answer.body
    return {
        "index": index,
        "status": answer.status,
        "replayed": answer.replayed,
        "id": body["id"],
        "version": body["version"],
        "events": body["events"],
    }


def _refused(index: int, refusal: DomainError | ApiError) -> dict[str, Any]:
    status = refusal.status if isinstance(refusal, ApiError) else status_of(refusal)
    return {
        "index": index,
        "status": status,
        "error": refusal.code,
        "message": refusal.message,
        "details": jsonable(refusal.details),
    }
