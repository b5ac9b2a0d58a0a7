"""The audit page: the audit log with filters, exports, the ledger's latest signed head, and
(for auditors) the full verification of the store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from api.routes.audit import QueryTime, may_verify, verification
from api.web.auth import Viewer
from api.web.params import Filters
from api.web.pipeline import scoped_partner
from api.web.render import page
from domain.access import AUDITOR
from domain.decider import EVENTS
from domain.vocabulary import Role

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
ROLES = sorted({*(r.value for r in Role), AUDITOR})
_TEXT_FILTERS = (("tenant_id", "Tenant"), ("migration_id", "Migration"), ("by", "Who"))


def _filters(request: Request, principal: Any) -> tuple[dict[str, Any], Filters]:
    """The audit view's filters (as `api.routes.audit.audit_filters` reads them)."""
    filters = Filters(dict(request.query_params))
    texts = {name: filters.text(name, label) for name, label in _TEXT_FILTERS}
    partner_id = scoped_partner(principal, request)
    if partner_id is not None:
        filters.values["partner_id"] = partner_id
    found = {
        "partner_id": partner_id,
        "tenant_id": texts.get("tenant_id"),
        "migration_id": texts.get("migration_id"),
        "principal": texts.get("by"),
        "role": filters.pick("role", ROLES, "Role"),
        "event_type": filters.pick("event_type", list(EVENTS), "Event"),
        "recorded_from": filters.read("recorded_from", QueryTime, "Recorded from"),
        "recorded_to": filters.read("recorded_to", QueryTime, "Recorded before"),
    }
    return found, filters


@router.get("/audit")
def audit(request: Request, principal: Viewer) -> Response:
    read_side = request.app.state.read_side
    queries = read_side.queries
    found, filters = _filters(request, principal)
    cursor = filters.raw.get("cursor")
    after = int(cursor) if cursor and cursor.isdigit() and len(cursor) <= 18 else None
    rows, next_after = queries.audit(**found, after=after, order="desc", limit=PAGE_SIZE)
    head = read_side.ledger.latest_head()
    kept = {k: v for k, v in filters.raw.items() if k != "cursor"}
    return page(
        request,
        "audit.html",
        status=422 if filters.problems else 200,
        title="Audit",
        active="/audit",
        today=queries.app.clock().date().isoformat(),
        rows=rows,
        total=queries.count_audit(**found),
        filters=filters,
        kept=kept,
        next_after=next_after,
        first_page=after is None,
        head=None if head is None else head.to_dict(),
        roles=ROLES,
        event_types=sorted(EVENTS),
        may_verify=may_verify(principal),
        result=None,
    )


@router.get("/audit/export.{fmt}")
def export(request: Request, principal: Viewer, fmt: str) -> Response:
    if fmt not in ("csv", "jsonl"):
        return page(request, "error.html", status=404, title="Not found",
                    message="Exports are .csv or .jsonl.", code="not_found")  # fmt: skip
    found, filters = _filters(request, principal)
    if filters.problems:
        return page(request, "error.html", status=422, title="Export refused",
                    message="; ".join(filters.problems), code="validation_error")  # fmt: skip
    queries = request.app.state.read_side.queries
    return StreamingResponse(
        queries.export(fmt, **found),
        media_type="text/csv" if fmt == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit.{fmt}"'},
    )


@router.get("/audit/verify")
def verify(request: Request, principal: Viewer) -> Response:
    """Auditors: verify the whole store now (it reads every event: seconds per 10k events)."""
    read_side = request.app.state.read_side
    if not may_verify(principal):
        return page(request, "error.html", status=403, title="Auditors only",
                    message="Verification covers every partner: it needs an auditor key.",
                    code="auditor_only")  # fmt: skip
    result = verification(request.app.state.heads, read_side)
    head = read_side.ledger.latest_head()
    return page(
        request,
        "verify.html",
        title="Verification",
        active="/audit",
        today=read_side.queries.app.clock().date().isoformat(),
        result=result,
        head=None if head is None else head.to_dict(),
    )
