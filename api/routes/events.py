"""POST /v1/events:batch: events for many migrations in one request, a result per item.

Not atomic (a bulk API): each item is decided as the single post of its event (POST
/v1/migrations/{id}/events) would be, in the order of the request, so items on one migration
see the ones before them; a refused item is its own result, with the status the single post
would have answered, and the other items go on. What the items record is stored in one
transaction (Tracker.execute_each), so a 503 means none of it landed (were that save to collide
with another writer, the items run one by one instead; should the store then fail, the items
stored before it keep their results, and the others are each a 503 `store_unavailable` result).
The request as a whole is refused (nothing stored) only before any item runs, when it breaks
the schema: an item malformed (422 `validation_error`, its `loc` naming the item's index; or,
for a check the wire answers with the domain's code such as `invalid_replaces`,
`details.index`), more than 100 items; or with a read-only key (403), or none (401).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api.answers import JSONAnswer
from api.deps import CorrelationId, CurrentPrincipal, Principal, TrackerDep
from api.errors import ApiError, errors_for, jsonable, status_of
from api.idempotent import Answer, Write, event_request_hash, once_each
from api.schemas import BatchIn, BatchItem, BatchResults, read_items
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
    """Record each item as its own single post would be, in order; 200 with one result per
    item: 201 with its stored events, or its refusal in the error shape. Not atomic."""
    items = read_items(body)  # before anything else, as FastAPI reads a body
    principal.ensure_writer()
    writes = [_write(item, principal, correlation_id) for item in items]
    answers = once_each(tracker, writes)
    failed = [a for a in answers if not isinstance(a, Answer | ApiError | DomainError)]
    if failed and not any(isinstance(a, Answer) and not a.replayed for a in answers):
        raise failed[0]  # the store's failure (503): none of the items was stored
    results = [_result(index, answer) for index, answer in enumerate(answers)]
    # 200 whatever the items' outcomes: the request was understood and every item answered
    # in `items` (207 Multi-Status is WebDAV's, with an XML body of its own).
    return JSONAnswer({"items": results})


def _write(item: BatchItem, principal: Principal, correlation_id: str) -> Write:
    """An item as the single post of its event (without Prefer: the answer holds no state
    unless its key keeps the whole answer)."""
    event = item.event
    ctx, command = principal.step(correlation_id, event)
    key = item.idempotency_key
    fingerprint = (
        "" if key is None else event_request_hash(item.migration_id, event.model_dump(mode="json"))
    )
    return Write(principal, (item.migration_id, ctx, command), None, key, fingerprint, True)


def _result(index: int, answer: Answer | Exception) -> dict[str, Any]:
    if isinstance(answer, Answer):
        return _stored(index, answer)
    if isinstance(answer, ApiError | DomainError):
        return _refused(index, answer)
    # The store failed after items before this one were stored, each alone (the combined
    # transaction had collided): this one was not stored.
    return _refused(
        index,
        ApiError(503, "store_unavailable", "the event store is unreachable; not stored"),
    )


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
