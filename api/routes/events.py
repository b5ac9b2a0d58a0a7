"""POST /v1/events:batch: events for many migrations in one request, a result per item.

Not atomic (a bulk API): each item is the single post of its event (POST
/v1/migrations/{id}/events), recorded in its own transaction, in the order of the request, so
items on one migration see the ones before them. Its refusal is its own result, with the
status the single post would have answered; the other items go on. The request as a whole is
refused (nothing stored) only before any item runs, when it breaks the schema: an item
malformed (422 `validation_error`, its `loc` naming the item's index; or, for a check the wire
answers with the domain's code such as `invalid_replaces`, `details.index`), more than 100
items; or with a read-only key (403), or none (401).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api.deps import CorrelationId, CurrentPrincipal, Principal, TrackerDep
from api.errors import STORE_ERRORS, ApiError, errors_for, jsonable, status_of
from api.idempotent import once
from api.routes.migrations import event_request_hash
from api.schemas import BatchIn, BatchItem, BatchResults, read_items
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context
from domain.errors import DomainError

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
    """Record each item as its own single post, in order; 200 with one result per item: 201
    with the stored events, or the refusal in the error shape. Not atomic."""
    items = read_items(body)  # before anything else, as FastAPI reads a body
    principal.ensure_writer()
    results: list[dict[str, Any]] = []
    unavailable: str | None = None
    for index, item in enumerate(items):
        if unavailable is not None:
            # The store stopped answering at an earlier item: this one was not tried.
            results.append(_refused(index, 503, "not_attempted", "not tried: " + unavailable, {}))
            continue
        try:
            results.append(_record(tracker, principal, correlation_id, index, item))
        except STORE_ERRORS:
            unavailable = "the event store is unreachable"
            results.append(_refused(index, 503, "store_unavailable", unavailable, {}))
    # 200 whatever the items' outcomes: the request was understood and every item answered
    # in `items` (207 Multi-Status is WebDAV's, with an XML body of its own).
    return JSONResponse({"items": results})


def _record(
    tracker: Tracker, principal: Principal, correlation_id: str, index: int, item: BatchItem
) -> dict[str, Any]:
    event = item.event
    ctx = Context(
        principal.name, principal.role, correlation_id, event.occurred_at, principal.partner_id
    )
    command = Command(event.type, event.model_dump(exclude={"type", "occurred_at"}))
    fingerprint = event_request_hash(item.migration_id, event.model_dump(mode="json"))
    try:
        answer = once(
            tracker,
            principal,
            item.idempotency_key,
            fingerprint,
            lambda: tracker.execute(item.migration_id, ctx, command),
        )
    except DomainError as refusal:
        return _refused(index, status_of(refusal), refusal.code, refusal.message, refusal.details)
    except ApiError as refusal:  # idempotency_key_reused
        return _refused(index, refusal.status, refusal.code, refusal.message, refusal.details)
    body = answer.body
    return {
        "index": index,
        "status": answer.status,
        "replayed": answer.replayed,
        "id": body["id"],
        "version": body["version"],
        "events": body["events"],
    }


def _refused(
    index: int, status: int, code: str, message: str, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "index": index,
        "status": status,
        "error": code,
        "message": message,
        "details": jsonable(details),
    }
