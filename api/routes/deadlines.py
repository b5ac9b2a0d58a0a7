"""Deadlines: every dated obligation across a partner's migrations, soonest first, as JSON and
as an iCalendar feed people can subscribe to from their calendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import CurrentPrincipal, QueriesDep
from api.errors import errors_for
from api.routes.audit import partner_scope
from api.schemas import NO_NUL

router = APIRouter(prefix="/v1", tags=["deadlines"])

Kind = Literal[
    "auto_renew_off_by",
    "access_lost",
    "data_deleted",
    "gdap_expires",
    "reduction_window_closes",
    "credit_follow_up",
]


class Deadline(BaseModel):
    kind: Kind
    date: date
    what: str
    overdue: bool
    migration_id: str
    partner_id: str
    customer_name: str
    subscription_id: str | None = None
    relationship_id: str | None = None


class Deadlines(BaseModel):
    items: list[Deadline]


def _items(
    principal: Any,
    queries: Any,
    partner_id: str | None,
    within_days: int,
    kind: list[Kind] | None,
) -> list[dict[str, Any]]:
    return queries.deadlines(  # type: ignore[no-any-return]
        now=queries.app.clock(),
        partner_id=partner_scope(principal, partner_id),
        within_days=within_days,
        kinds=None if not kind else frozenset(kind),
    )


PartnerId = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=NO_NUL,
        description="Auditors: one partner. A partner key may name only its own (else 403).",
    ),
]
WithinDays = Annotated[
    int, Query(ge=0, le=3650, description="Due within this many days from today (and overdue)")
]
Kinds = Annotated[list[Kind] | None, Query(description="Only these kinds (repeat the parameter)")]


@router.get(
    "/deadlines",
    response_model=Deadlines,
    summary="List deadlines",
    responses=errors_for(401, 403, 422, 503),
)
def list_deadlines(
    principal: CurrentPrincipal,
    queries: QueriesDep,
    partner_id: PartnerId = None,
    within_days: WithinDays = 90,
    kind: Kinds = None,
) -> dict[str, Any]:
    """Every dated obligation across the migrations, soonest first: auto-renew to turn off
    before a term end, access lost and data deleted after an unreplaced expiry, GDAP ends, the
    last day of a 7-day seat reduction window, credits unanswered for 14 days. Items overdue by
    up to 30 days are included, marked `overdue`, except a seat reduction window that has
    closed: it asks nothing any more."""
    return {"items": _items(principal, queries, partner_id, within_days, kind)}


@router.get(
    "/deadlines.ics",
    response_class=Response,
    summary="Subscribe to deadlines",
    responses={
        200: {"content": {"text/calendar": {}}, "description": "An iCalendar feed"},
        **errors_for(401, 403, 422, 503),
    },
)
def deadlines_calendar(
    principal: CurrentPrincipal,
    queries: QueriesDep,
    request: Request,
    partner_id: PartnerId = None,
    within_days: WithinDays = 90,
    kind: Kinds = None,
) -> Response:
    """The same deadlines as an iCalendar feed (RFC 5545): one all-day event per item, each
    linking to its migration's page."""
    items = _items(principal, queries, partner_id, within_days, kind)
    return calendar_response(items, queries.app.clock(), str(request.base_url))


def calendar_response(items: list[dict[str, Any]], now: datetime, base_url: str) -> Response:
    """Deadline items as an iCalendar body (RFC 5545)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//csp-tracker//deadlines//EN",
        "CALSCALE:GREGORIAN",
        "X-WR-CALNAME:CSP migration deadlines",
    ]
    for item in items:
        day = date.fromisoformat(item["date"])
        about = item.get("subscription_id") or item.get("relationship_id") or ""
        uid = f"{item['migration_id']}-{item['kind']}-{about}-{item['date']}@csp-tracker"
        link = f"{base_url.rstrip('/')}/migrations/{item['migration_id']}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{_text(uid)}",
            f"DTSTAMP:{stamp}",
            f"DTSTART;VALUE=DATE:{day.strftime('%Y%m%d')}",
            f"DTEND;VALUE=DATE:{(day + timedelta(days=1)).strftime('%Y%m%d')}",
            f"SUMMARY:{_text(item['customer_name'] + ': ' + item['what'])}",
            f"DESCRIPTION:{_text(item['kind'] + ' - migration ' + item['migration_id'])}",
            f"URL:{link}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    body = "".join(_fold(line) + "\r\n" for line in lines)
    return Response(body, media_type="text/calendar; charset=utf-8")


def _text(value: str) -> str:
    """RFC 5545 TEXT escaping."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")  # a lone CR too: some parsers end a line there
    )


def _fold(line: str) -> str:
    """Lines of at most 75 octets, continued with a space (RFC 5545 3.1)."""
    data = line.encode()
    if len(data) <= 75:
        return line
    parts, start, limit = [], 0, 75
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # never split a character
            end -= 1
        parts.append(data[start:end].decode())
        start, limit = end, 74
    return "\r\n ".join(parts)
