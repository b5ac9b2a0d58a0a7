"""The audit trail: filtered pages, streamed export, hash-chain verification."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from api.deps import AuditCursor, CurrentPrincipal, Principal, QueriesDep, ReadSideDep
from api.errors import ApiError, errors_for
from api.schemas import (
    DATE_PATTERN,
    NO_NUL,
    QUERY_TIME_PATTERN,
    AuditPage,
    Verification,
)
from domain.access import AUDITOR
from domain.decider import EVENTS
from domain.vocabulary import Role

router = APIRouter(prefix="/v1/audit", tags=["audit"])

# -- query parameters shared with the migrations routes ----------------------------------------
YEARS = (1990, 2200)
TIME_RULE = (
    "ISO-8601: a date (YYYY-MM-DD, read as midnight UTC), or a date and a time "
    "(YYYY-MM-DDTHH:MM, seconds and up to 6 decimals optional) with a zone (Z or ±HH:MM); "
    "a time without a zone is read as UTC. The year, as written, lies between "
    f"{YEARS[0]} and {YEARS[1]} (the `pattern` says exactly what is accepted)"
)
DATE_RULE = f"A calendar date (YYYY-MM-DD, no time, so no time zone; year {YEARS[0]}..{YEARS[1]})"


def _shaped(pattern: str, what: str) -> BeforeValidator:
    """Only strings of the documented shape: pydantic alone would read more (a Unix time,
    a space for the `T`, 7 decimals...), which the schema does not allow."""
    shape = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not shape.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return BeforeValidator(check)


if TYPE_CHECKING:
    EventType = str
else:
    # The event wire names (`domain.decider.EVENTS`), shown in the OpenAPI schema as an enum.
    EventType = StrEnum("EventType", {name: name for name in EVENTS})


def one_of(vocabulary: Any, name: str) -> BeforeValidator:
    """Refuse a value outside `vocabulary` (an enum) with 422 validation_error listing every
    allowed value in the message and in `details.allowed`. Raised as an ApiError, which
    pydantic lets through, because the generic handler clips long validation messages."""
    allowed = [member.value for member in vocabulary]

    def check(value: Any) -> Any:
        if value is None or value in allowed:
            return value
        message = f"must be one of: {', '.join(allowed)}"
        echo = str(value) if len(str(value)) <= 100 else str(value)[:100] + "…"
        raise ApiError(
            422,
            "validation_error",
            f"query.{name}: {message}",
            errors=[{"loc": ["query", name], "msg": message, "type": "enum"}],
            count=1,
            allowed=allowed,
            value=echo,
        )

    return BeforeValidator(check)


def utc_time(value: datetime | None) -> datetime | None:
    """A time without a zone is UTC; the result is in UTC. Its year as written lies within
    `YEARS` (the pattern holds it there), so the conversion cannot overflow."""
    if value is None:
        return None
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise ValueError(f"year must lie between {YEARS[0]} and {YEARS[1]}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def plausible_date(value: date | None) -> date | None:
    """Calendar dates far from today are typos: their year must lie within `YEARS`."""
    if value is not None and not YEARS[0] <= value.year <= YEARS[1]:
        raise ValueError(f"year must lie between {YEARS[0]} and {YEARS[1]}")
    return value


QueryTime = Annotated[
    datetime,
    _shaped(QUERY_TIME_PATTERN, "an ISO-8601 date or time, year 1990..2200 (see its pattern)"),
    AfterValidator(utc_time),
    WithJsonSchema(
        {"type": "string", "pattern": QUERY_TIME_PATTERN, "examples": ["2026-11-02T09:00:00Z"]}
    ),
]
"""A time in a query: see TIME_RULE; in UTC once validated."""
QueryDate = Annotated[
    date,
    _shaped(DATE_PATTERN, "a date (YYYY-MM-DD), year 1990..2200"),
    AfterValidator(plausible_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]
"""A calendar date in a query: see DATE_RULE."""


def _whole_number(value: Any) -> Any:
    """Query strings are parsed leniently by pydantic ("1.0", " 5", "5_0" become ints):
    accept ASCII digits only. (`Query(strict=True)` would refuse every string.)"""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,6}", value):
        raise ValueError("must be a whole number written in digits")
    return value


Limit = Annotated[
    int,
    Query(ge=1, le=500, description="Items per page (1..500, digits only)"),
    BeforeValidator(_whole_number),
]
PARTNER_RULE = (
    "Auditor keys: one partner's rows. A partner key always reads its own partner's rows: "
    "naming its own partner is allowed, naming another answers 403 `partner_scope`"
)


def partner_scope(principal: Principal, partner_id: str | None) -> str | None:
    """The partner a read is held to: a partner key's own; it may name only that partner
    (another answers 403 partner_scope rather than silently its own rows)."""
    if principal.partner_id is None:
        return partner_id
    if partner_id is not None and partner_id != principal.partner_id:
        raise ApiError(
            403,
            "partner_scope",
            "this key reads its own partner's rows only",
            partner_id=partner_id,
            key_partner_id=principal.partner_id,
        )
    return principal.partner_id


async def audit_filters(
    principal: CurrentPrincipal,
    partner_id: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description=PARTNER_RULE)
    ] = None,
    tenant_id: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="The tenant's domain, exactly"),
    ] = None,
    migration_id: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="One migration's id")
    ] = None,
    by: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="The principal")
    ] = None,
    role: Annotated[
        Role | None,
        Query(description="The role the event was recorded as"),
        one_of(Role, "role"),
    ] = None,
    event_type: Annotated[
        EventType | None,
        Query(description="The event's type (its wire name)"),
        one_of(EventType, "event_type"),
    ] = None,
    recorded_from: Annotated[
        QueryTime | None, Query(description=f"Recorded at or after (inclusive). {TIME_RULE}")
    ] = None,
    recorded_to: Annotated[
        QueryTime | None, Query(description=f"Recorded before (exclusive). {TIME_RULE}")
    ] = None,
) -> dict[str, Any]:
    """The audit view's filters, shared by the page and the export; a partner key is held to
    its own partner's rows (naming another partner: 403 partner_scope)."""
    return {
        "partner_id": partner_scope(principal, partner_id),
        "tenant_id": tenant_id,
        "migration_id": migration_id,
        "principal": by,
        "role": None if role is None else str(role),  # StrEnum: str() is its value
        "event_type": None if event_type is None else str(event_type),
        "recorded_from": recorded_from,
        "recorded_to": recorded_to,
    }


AuditFilters = Annotated[dict[str, Any], Depends(audit_filters)]


@router.get(
    "",
    response_model=AuditPage,
    summary="List audit rows",
    responses=errors_for(401, 403, 422, 503),
)
def list_audit_rows(
    queries: QueriesDep,
    filters: AuditFilters,
    cursor: AuditCursor = None,
    order: Annotated[
        Literal["asc", "desc"],
        Query(description="By position: oldest first (asc) or newest first"),
    ] = "asc",
    limit: Limit = 100,
) -> dict[str, Any]:
    """Audit rows, filtered; a partner key sees its own partner's rows only.

    A row's `position` is the event's position in the whole ledger (one log for all partners),
    which its inclusion proof needs, so a partner's positions have gaps where other partners'
    events lie. That is by design: positions are not renumbered per partner."""
    after = None if cursor is None else int(cursor)
    rows, next_after = queries.audit(**filters, after=after, order=order, limit=limit)
    return {"items": rows, "next_cursor": None if next_after is None else str(next_after)}


_EXPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
}


@router.get(
    "/export",
    response_class=StreamingResponse,
    summary="Export audit rows (CSV or JSON lines)",
    responses={
        200: {
            "description": "The rows: `text/csv` (format=csv, with a header line) or "
            "`application/x-ndjson` (format=jsonl, one JSON object per line)",
            "content": _EXPORT_CONTENT,
        },
        **errors_for(401, 403, 422, 503),
    },
)
def export_audit_rows(
    queries: QueriesDep,
    filters: AuditFilters,
    format: Annotated[
        Literal["csv", "jsonl"],
        Query(description="csv (text/csv) or jsonl (application/x-ndjson)"),
    ] = "csv",
) -> StreamingResponse:
    """The audit rows matching the filters, streamed as CSV or JSON lines.

    CSV cells are made safe to open in a spreadsheet (OWASP's rule against formula injection):
    a text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a single
    quote `'` in front, so it is shown as text rather than run as a formula. JSON lines are
    written unchanged."""
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        queries.export(format, **filters),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit.{format}"'},
    )


@router.get(
    "/verify",
    response_model=Verification,
    summary="Verify the store and the audit trail (auditors)",
    responses=errors_for(401, 403, 422, 503),
)
def verify_audit_trail(
    principal: CurrentPrincipal, read_side: ReadSideDep, request: Request
) -> dict[str, Any]:
    """Auditors only: verify the store itself (stream links, the ledger against every signed
    head, snapshots), then the audit view against it; `ok` means every item was checked."""
    if not may_verify(principal):
        raise ApiError(403, "auditor_only", "verification covers every partner: auditors only")
    return verification(request.app.state.heads, read_side)


def may_verify(principal: Principal) -> bool:
    return principal.role == AUDITOR and principal.partner_id is None


def verification(heads: Any, read_side: Any) -> dict[str, Any]:
    """The full verification (`ReadSide.verify`) with this server's key, and against the
    signer's own record of its last head, as `csp-tracker verify` does."""
    if heads is None:
        return read_side.verify(None)  # type: ignore[no-any-return]
    return read_side.verify(  # type: ignore[no-any-return]
        heads.signer.public_key, heads.signer.last_head()
    )
