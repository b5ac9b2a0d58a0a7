"""The deadlines page: every dated obligation across the partner's migrations, soonest first,
and the same list as an iCalendar download."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.routes.deadlines import Kind, calendar_response
from api.web.auth import Viewer
from api.web.calendar import FEED_DAYS, feed_path
from api.web.params import Filters
from api.web.pipeline import scoped_partner
from api.web.render import page

router = APIRouter(include_in_schema=False)

WITHIN = ("7", "30", "90", "365")
KINDS = get_args(Kind)


def _items(request: Request, principal: Any) -> tuple[list[dict[str, Any]], Filters, Any]:
    filters = Filters(dict(request.query_params))
    within = int(filters.pick("within_days", WITHIN, "Due within") or 90)
    kind = filters.pick("kind", KINDS, "Kind")
    queries = request.app.state.read_side.queries
    partner_id = scoped_partner(principal, request)
    items = queries.deadlines(
        now=queries.app.clock(),
        partner_id=partner_id,
        within_days=within,
        kinds=None if kind is None else frozenset({kind}),
    )
    filters.values.update(within_days=str(within), partner_id=partner_id)
    return items, filters, queries


@router.get("/deadlines")
def deadlines(request: Request, principal: Viewer) -> Response:
    items, filters, queries = _items(request, principal)
    return page(
        request,
        "deadlines.html",
        status=422 if filters.problems else 200,
        title="Deadlines",
        active="/deadlines",
        today=queries.app.clock().date().isoformat(),
        items=items,
        filters=filters,
        within=WITHIN,
        kinds=KINDS,
        feed=str(request.base_url).rstrip("/") + feed_path(request, request.state.token),
        feed_days=FEED_DAYS,
    )


@router.get("/deadlines.ics")
def deadlines_calendar(request: Request, principal: Viewer) -> Response:
    items, _, queries = _items(request, principal)
    response = calendar_response(items, queries.app.clock(), str(request.base_url))
    response.headers["Content-Disposition"] = 'attachment; filename="deadlines.ics"'
    return response
