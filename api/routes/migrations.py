"""Migrations: request a relationship, record events, read state (now or as of a time)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api import headers, render
from api.answers import JSONAnswer
from api.appender import Post
from api.deps import (
    AuditCursor,
    CorrelationId,
    Credentials,
    CurrentPrincipal,
    PresentedKey,
    QueriesDep,
    TrackerDep,
    correlation_of,
    own_migration,
)
from api.errors import ApiError, errors_for
from api.headers import WriteHeaders
from api.idempotent import Answer, event_request_hash, once, request_hash
from api.routes.audit import (
    DATE_RULE,
    PARTNER_RULE,
    TIME_RULE,
    Limit,
    QueryDate,
    QueryTime,
    one_of,
    partner_scope,
)
from api.schemas import (
    HEADER_TEXT_PATTERN,
    NO_NUL,
    AuditPage,
    EventsIn,
    MigrationPage,
    MigrationState,
    Recorded,
    RelationshipRequest,
    expected_version,
    read_events,
)
from domain.application import Recorded as DomainRecorded
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context
from domain.decider import START
from domain.vocabulary import Risk, Stage

router = APIRouter(prefix="/v1/migrations", tags=["migrations"])

MigrationId = Annotated[UUID, Path(description="The migration's id (`id` of POST /v1/migrations)")]
Order = Annotated[
    Literal["asc", "desc"], Query(description="By position: oldest first (asc) or newest first")
]

IdempotencyKey = Annotated[
    str | None,
    Header(
        description=headers.IDEMPOTENCY_KEY,
        max_length=200,
        json_schema_extra={"pattern": HEADER_TEXT_PATTERN},
    ),
]
# A Prefer header's pieces: quoted strings (commas and semicolons inside them do not count),
# runs of other text, and the separators. Linear: each alternative starts with its own characters.
_PREFER_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[^,;"]+|[,;]')


def prefers_minimal(prefer: str | None) -> bool:
    """Whether a Prefer header asks for `return=minimal`: the first `return` preference counts
    (RFC 7240, section 2); parameters (after `;`) and other preferences are ignored."""
    preference, in_parameters = "", False
    for token in _PREFER_TOKENS.findall(prefer or ""):
        if token == ",":
            if (value := _return_value(preference)) is not None:
                return value == "minimal"
            preference, in_parameters = "", False
        elif token == ";":
            in_parameters = True
        elif not in_parameters:
            preference += token
    return _return_value(preference) == "minimal"


def _return_value(preference: str) -> str | None:
    name, _, value = preference.partition("=")
    if name.strip().lower() != "return":
        return None
    return value.strip().strip('"').lower()


def respond(answer: Answer, *, minimal: bool = False) -> JSONResponse:
    """A write's answer, with the migration's version as its ETag; with `minimal`, without the
    state (RFC 7240 `Prefer: return=minimal`)."""
    headers = {"ETag": str(answer.body["version"])}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    if not minimal:
        return JSONAnswer(answer.body, status_code=answer.status, headers=headers)
    headers["Preference-Applied"] = "return=minimal"
    return JSONAnswer(render.minimal(answer.body), status_code=answer.status, headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=Recorded,
    summary="Request a relationship (open a migration)",
    responses=errors_for(400, 401, 403, 404, 409, 413, 422, 503),
)
def request_relationship(
    body: RelationshipRequest,
    tracker: TrackerDep,
    principal: CurrentPrincipal,
    correlation_id: CorrelationId,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Record a relationship request (step 1) for the key's partner."""
    principal.ensure_writer()
    ctx = Context(
        principal.name, principal.role, correlation_id, body.occurred_at, principal.partner_id
    )
    fields = {**body.model_dump(exclude={"occurred_at"}), "partner_id": principal.partner_id}
    command = Command(START.wire_name(), fields)
    response = respond(
        once(
            tracker,
            principal,
            idempotency_key,
            request_hash("POST /v1/migrations", body.model_dump(mode="json")),
            lambda: tracker.start(ctx, command),
        )
    )
    response.headers["Location"] = f"/v1/migrations/{json.loads(bytes(response.body))['id']}"
    return response


_WRITE_HEADERS = {
    name: {"description": description, "schema": {"type": "string"}}
    for name, description in (
        ("ETag", "The migration's version after the write"),
        ("Location", "The migration: /v1/migrations/{id}"),
        ("Vary", "`Prefer`: the body depends on it"),
        ("Preference-Applied", "`return=minimal` when the state was left out as asked"),
    )
}


@router.post(
    "/{migration_id}/events",
    status_code=201,
    response_model=Recorded,
    summary="Record an event (or a batch, atomically)",
    responses={
        201: {
            "description": "Stored: the events and the migration's state after them (without "
            "it for `Prefer: return=minimal`)",
            "headers": _WRITE_HEADERS,
        },
        **errors_for(400, 401, 403, 404, 409, 412, 413, 422, 503),
    },
    # If-Match, Idempotency-Key and Prefer: read by the route (api/headers.py).
    openapi_extra={"parameters": headers.openapi_parameters()},
)
async def record_event(
    request: Request,
    migration_id: MigrationId,
    body: Annotated[
        EventsIn,
        Body(
            description="One event, or an array of 1 to 100 events recorded in order in one "
            "transaction: all of them, or none"
        ),
    ],
    key: PresentedKey,
) -> JSONResponse:
    """Record one event, or an array of up to 100 in order, all or none (a refusal names
    `details.index`); the response holds every stored event (incl. migration_completed), and
    the migration's state unless `Prefer: return=minimal`."""
    sent = WriteHeaders.read(request)
    if_match, idempotency_key = sent.if_match, sent.idempotency_key
    minimal = prefers_minimal(sent.prefer)
    # Read here rather than as a dependency (CorrelationId): each dependency costs FastAPI a
    # round of solving per request, and this is the route partner tools call most.
    correlation_id = correlation_of(request)
    if isinstance(body, list):  # an array: in a worker thread, atomically
        answer = await run_in_threadpool(
            _record_array,
            request.app.state.tracker,
            migration_id,
            body,
            key,
            correlation_id,
            if_match,
            idempotency_key,
            minimal,
        )
    else:  # one event: the appender's writer thread, with the other posts queued meanwhile
        post = Post(key, migration_id, body, correlation_id, if_match, idempotency_key, minimal)
        answer = await request.app.state.appender.append(post)
    response = respond(answer, minimal=minimal)
    response.headers["Location"] = f"/v1/migrations/{migration_id}"
    response.headers["Vary"] = "Prefer"
    return response


def _record_array(
    tracker: Tracker,
    migration_id: UUID,
    body: list[Any],
    key: Credentials,
    correlation_id: str,
    if_match: str | None,
    idempotency_key: str | None,
    minimal: bool,
) -> Answer:
    """An array of events, all recorded or none: checked in the order of a single post (the
    key, the body, the role, If-Match)."""
    principal = key.principal()
    events = read_events(body)
    principal.ensure_writer()
    expected = expected_version(if_match)

    # The domain refuses another partner's migration as not found (before the If-Match check).
    steps = [principal.step(correlation_id, event) for event in events]

    def run() -> DomainRecorded:
        return tracker.execute_many(migration_id, steps, expected_version=expected)

    # Only a key is kept with its request's fingerprint: without one there is nothing to hash.
    fingerprint = "" if idempotency_key is None else event_request_hash(migration_id, _wire(events))
    return once(tracker, principal, idempotency_key, fingerprint, run, minimal=minimal)


def _wire(events: list[Any]) -> Any:
    """The body as JSON values, as the fingerprint of a request reads it."""
    return [event.model_dump(mode="json") for event in events]


@router.get(
    "",
    response_model=MigrationPage,
    summary="List migrations",
    responses=errors_for(401, 403, 422, 503),
)
def list_migrations(
    principal: CurrentPrincipal,
    queries: QueriesDep,
    stage: Annotated[
        Stage | None, Query(description="The migration's stage"), one_of(Stage, "stage")
    ] = None,
    risk: Annotated[
        Risk | None,
        Query(description="A risk flag the migration has now (at read time)"),
        one_of(Risk, "risk"),
    ] = None,
    tenant_id: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="The tenant's domain, exactly"),
    ] = None,
    term_end_before: Annotated[
        QueryDate | None,
        Query(
            description=f"{DATE_RULE}: open migrations whose nearest term end of an unreplaced,"
            " active original is before it"
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NO_NUL,
            description="The customer name, tenant domain or migration id contains it, in any "
            "case (backslash, % and _ are ignored)",
        ),
    ] = None,
    partner_id: Annotated[
        str | None, Query(max_length=100, pattern=NO_NUL, description=PARTNER_RULE)
    ] = None,
    limit: Limit = 100,
    cursor: Annotated[
        str | None,
        Query(
            max_length=36,
            pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            description="next_cursor of the previous page (a migration id)",
        ),
    ] = None,
) -> dict[str, Any]:
    """Migrations from the current-state view (it may lag writes by a moment)."""
    partner_id = partner_scope(principal, partner_id)
    try:
        items, next_cursor = queries.list_migrations(
            now=queries.app.clock(),
            partner_id=partner_id,
            stage=None if stage is None else stage.value,
            risk=None if risk is None else risk.value,
            tenant_id=tenant_id,
            term_end_before=term_end_before,
            text=q,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_cursor", str(exc) or "invalid cursor") from None
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{migration_id}",
    response_model=MigrationState,
    summary="Get a migration (now or as of a time)",
    responses=errors_for(401, 404, 422, 503),
)
def get_migration(
    migration_id: MigrationId,
    tracker: TrackerDep,
    principal: CurrentPrincipal,
    as_of: Annotated[
        QueryTime | None,
        Query(description=f"Replay the store to this instant. {TIME_RULE}"),
    ] = None,
    basis: Annotated[
        Literal["recorded", "business"],
        Query(
            description="With as_of: 'recorded' (default) is what the store knew then (events "
            "recorded by then); 'business' is what had happened by then (events whose "
            "occurred_at is at or before as_of, including those recorded later)"
        ),
    ] = "recorded",
) -> JSONResponse:
    """The migration's state now (read from the store), or as it stood at `as_of`."""
    migration = own_migration(tracker, migration_id, principal)
    if as_of is None:
        body = render.state(migration, tracker.clock())
    else:
        past = tracker.as_of(migration_id, as_of, basis)
        body = render.described(past, now=as_of)
    return JSONAnswer(body, headers={"ETag": str(body["version"])})


@router.get(
    "/{migration_id}/history",
    response_model=AuditPage,
    summary="Get a migration's history",
    responses=errors_for(401, 404, 422, 503),
)
def get_migration_history(
    migration_id: MigrationId,
    tracker: TrackerDep,
    principal: CurrentPrincipal,
    queries: QueriesDep,
    cursor: AuditCursor = None,
    order: Order = "asc",
    limit: Limit = 100,
) -> dict[str, Any]:
    """The migration's audit rows (from the audit view)."""
    own_migration(tracker, migration_id, principal)
    rows, next_after = queries.audit(
        migration_id=str(migration_id),
        after=None if cursor is None else int(cursor),
        order=order,
        limit=limit,
    )
    return {"items": rows, "next_cursor": None if next_after is None else str(next_after)}
