"""Migrations: the filtered list, one migration's page (timeline, subscriptions side by side,
next actions, state as of a date), and the form for the events people record by hand."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from api import render as api_render
from api.deps import own_migration
from api.errors import status_of
from api.routes.audit import QueryDate, QueryTime
from api.schemas import EventBody
from api.web.auth import Viewer, Writer
from api.web.params import Filters
from api.web.pipeline import scoped_partner
from api.web.render import page
from domain.decider import EVENTS
from domain.errors import DomainError, NotFound
from domain.vocabulary import Risk, Stage

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
STEPS = {
    1: "Relationship requested",
    2: "Accepted and provisioned",
    3: "Originals expire or are cancelled",
    4: "Continuing on the new subscriptions",
}
# The events people record by hand on the migration's page (the rest come from partner tools
# through the API, or from Partner Center's webhooks).
HAND_RECORDED = (
    "note_added",
    "original_auto_renew_disabled",
    "licenses_reassigned",
    "credit_requested",
    "credit_resolved",
)
_EVENT_BODY: TypeAdapter[Any] = TypeAdapter(EventBody)
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")  # <input type="datetime-local">


# -- the list ---------------------------------------------------------------------------------
@router.get("/migrations")
def migrations(request: Request, principal: Viewer) -> Response:
    queries = request.app.state.read_side.queries
    now = queries.app.clock()
    filters = Filters(dict(request.query_params))
    stage = filters.pick("stage", [s.value for s in Stage], "Stage")
    risk = filters.pick("risk", [r.value for r in Risk], "Risk")
    text = filters.text("q", "Customer")
    before = filters.read("term_end_before", QueryDate, "Ending before")
    cursor = filters.read("cursor", UUID, "Page")
    partner_id = scoped_partner(principal, request)
    items, next_cursor = queries.list_migrations(
        now=now,
        partner_id=partner_id,
        stage=stage,
        risk=risk,
        term_end_before=before,
        text=text,
        limit=PAGE_SIZE,
        cursor=None if cursor is None else str(cursor),
    )
    kept = {k: v for k, v in filters.raw.items() if k != "cursor"}
    return page(
        request,
        "migrations.html",
        status=422 if filters.problems else 200,
        title="Migrations",
        active="/migrations",
        today=now.date().isoformat(),
        items=items,
        filters=filters,
        kept=kept,
        next_cursor=next_cursor,
        first_page=cursor is None,
        stages=[s.value for s in Stage],
        risks=[r.value for r in Risk],
    )


# -- one migration ------------------------------------------------------------------------------
@router.get("/migrations/{migration_id}")
def migration(request: Request, principal: Viewer, migration_id: str) -> Response:
    return _migration_page(request, principal, migration_id)


def _migration_page(
    request: Request,
    principal: Any,
    migration_id: str,
    *,
    status: int = 200,
    refusal: dict[str, Any] | None = None,
) -> Response:
    tracker = request.app.state.tracker
    filters = Filters(dict(request.query_params))
    try:
        mid = UUID(migration_id)
    except ValueError:
        raise NotFound("migration_not_found", f"no migration {migration_id}") from None
    as_of = filters.read("as_of", QueryTime, "As of")
    # People ask what had happened by a date; what the store knew then is the other reading.
    basis = filters.pick("basis", ("business", "recorded"), "Basis") or "business"
    current = own_migration(tracker, mid, principal)
    now = tracker.clock()
    left_out: list[int] = []
    if as_of is None:
        state = api_render.state(current, now)
    else:
        try:
            past = tracker.as_of(mid, as_of, basis)
        except NotFound:
            hint = (
                " (it was recorded later: choose 'What had happened by then')"
                if basis == "recorded"
                else ""
            )
            filters.problems.append(
                f"As of: the migration did not exist yet on {as_of:%Y-%m-%d}{hint}"
            )
            as_of = None
            state = api_render.state(current, now)
        else:
            state = api_render.described(past, now=as_of)
            left_out = state["left_out"]
    events = _timeline(request, mid, as_of, basis, left_out)
    kinds = [
        t
        for t in HAND_RECORDED
        if principal.role in EVENTS[t].ROLES
        and (t != "licenses_reassigned" or current.state.replacements)
    ]
    return page(
        request,
        "migration.html",
        status=status if not filters.problems else 422,
        title=state["customer_name"],
        active="/migrations",
        today=now.date().isoformat(),
        m=state,
        current_version=current.version,
        as_of=as_of,
        basis=basis,
        filters=filters,
        steps=events,
        pairs=_side_by_side(state),
        forms=[] if as_of is not None or principal.read_only else kinds,
        refusal=refusal,
        recorded=recorded
        if (recorded := request.query_params.get("recorded")) in HAND_RECORDED
        else None,
        admin_access_now=current.state.has_admin_access(now),
    )


def _timeline(
    request: Request, mid: UUID, as_of: Any, basis: str, left_out: list[int]
) -> list[dict[str, Any]]:
    """The migration's audit rows grouped under the seed's four steps; a note goes under the
    step it was written in. As of a time: only the rows that time covers."""
    queries = request.app.state.read_side.queries
    rows, _ = queries.audit(migration_id=str(mid), limit=500)
    steps: dict[int, dict[str, Any]] = {
        n: {"n": n, "title": title, "events": []} for n, title in STEPS.items()
    }
    current = 1
    for row in rows:
        if as_of is not None:
            at = row["recorded_at"] if basis == "recorded" else row["occurred_at"]
            if _aware(at) > as_of:
                continue
        cls = EVENTS.get(row["event_type"])
        step = cls.STEP if cls is not None and cls.STEP else current
        current = max(current, step)
        row["left_out"] = row["payload"].get("originator_version") in left_out
        steps[step]["events"].append(row)
    return list(steps.values())


def _aware(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _side_by_side(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Each original beside the replacements provisioned for it."""
    replacements = {r["subscription_id"]: r for r in state["replacements"]}
    return [
        {"original": o, "replacements": [replacements[r] for r in o["replaced_by"]]}
        for o in state["originals"]
    ]


# -- the form ----------------------------------------------------------------------------------
@router.post("/migrations/{migration_id}/events")
def record(
    request: Request,
    principal: Writer,
    migration_id: str,
    type: Annotated[str, Form(max_length=64)],
    version: Annotated[str, Form(max_length=20)] = "",
    subscription_id: Annotated[str, Form(max_length=300)] = "",
    text: Annotated[str, Form(max_length=5000)] = "",
    requested_by: Annotated[str, Form(max_length=20)] = "",
    outcome: Annotated[str, Form(max_length=20)] = "",
    amount: Annotated[str, Form(max_length=40)] = "",
    currency: Annotated[str, Form(max_length=10)] = "",
    occurred_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Record one hand-recorded event, exactly as POST /v1/migrations/{id}/events would: the
    body is validated by the API's own schema, the command goes through Tracker.execute with
    the version the page showed as If-Match, and a refusal is shown on the page."""
    fields = {
        "subscription_id": subscription_id,
        "text": text,
        "requested_by": requested_by,
        "outcome": outcome,
        "amount": amount,
        "currency": currency,
    }
    body: dict[str, Any] = {"type": type}
    for name, value in fields.items():
        if value.strip():
            body[name] = value.strip() if name != "text" else value
    if occurred_at.strip():
        when = occurred_at.strip()
        body["occurred_at"] = when + ":00Z" if _LOCAL_TIME.match(when) else when

    def refused(status: int, code: str, message: str) -> Response:
        return _migration_page(
            request,
            principal,
            migration_id,
            status=status,
            refusal={"type": type, "code": code, "message": message, "values": body},
        )

    if principal.read_only:
        return refused(403, "read_only", "this key may only read")
    if type not in HAND_RECORDED:
        return refused(422, "invalid_event_type", "this form records only hand-recorded events")
    try:
        event = _EVENT_BODY.validate_json(json.dumps(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]).replace("_", " ")
        message = str(first["msg"]).removeprefix("Value error, ")
        return refused(422, "validation_error", f"{where}: {message}" if where else message)
    if version and not (version.isdigit() and len(version) <= 18):
        return refused(422, "invalid_version", "the page's version must be a whole number")
    try:
        mid = UUID(migration_id)
    except ValueError:
        raise NotFound("migration_not_found", f"no migration {migration_id}") from None
    expected = int(version) if version else None
    tracker = request.app.state.tracker
    ctx, command = principal.step(request.state.correlation_id, event)
    try:
        tracker.execute(mid, ctx, command, expected_version=expected)
    except DomainError as exc:
        if isinstance(exc, NotFound) and exc.code == "migration_not_found":
            raise
        return refused(status_of(exc), exc.code, exc.message)
    # The current-state view follows the store a moment later: wait for it (bounded), so the
    # page the browser is sent to shows what was just recorded.
    with suppress(TimeoutError):
        request.app.state.read_side.wait(timeout=2)
    return RedirectResponse(f"/migrations/{mid}?recorded={type}#history", status_code=303)
