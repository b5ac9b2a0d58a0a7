"""The audit trail: filtered pages, streamed export, hash-chain verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import AuditCursor, CurrentPrincipal, QueriesDep, ReadSideDep
from api.errors import ERROR_RESPONSES, ApiError
from api.schemas import AuditPage, Verification
from domain.access import AUDITOR

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)

Short = Annotated[str | None, Query(max_length=200)]


async def audit_filters(
    principal: CurrentPrincipal,
    partner_id: Short = None,
    tenant_id: Short = None,
    migration_id: Short = None,
    by: Annotated[str | None, Query(max_length=200, description="The principal")] = None,
    role: Short = None,
    event_type: Short = None,
    recorded_from: datetime | None = None,
    recorded_to: datetime | None = None,
) -> dict[str, Any]:
    """The audit view's filters, shared by the page and the export; a partner key is held to
    its own partner's rows."""
    return {
        "partner_id": principal.partner_id or partner_id,
        "tenant_id": tenant_id,
        "migration_id": migration_id,
        "principal": by,
        "role": role,
        "event_type": event_type,
        "recorded_from": recorded_from,
        "recorded_to": recorded_to,
    }


AuditFilters = Annotated[dict[str, Any], Depends(audit_filters)]


@router.get("", response_model=AuditPage)
def audit(
    queries: QueriesDep,
    filters: AuditFilters,
    cursor: AuditCursor = None,
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Audit rows, filtered; a partner key sees its own partner's rows only."""
    after = None if cursor is None else int(cursor)
    rows, next_after = queries.audit(**filters, after=after, order=order, limit=limit)
    return {"items": rows, "next_cursor": None if next_after is None else str(next_after)}


@router.get("/export", response_class=StreamingResponse)
def export(
    queries: QueriesDep,
    filters: AuditFilters,
    format: Literal["csv", "jsonl"] = "csv",
) -> StreamingResponse:
    """The audit rows matching the filters, streamed as CSV or JSON lines."""
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        queries.export(format, **filters),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit.{format}"'},
    )


@router.get("/verify", response_model=Verification)
def verify(principal: CurrentPrincipal, read_side: ReadSideDep, request: Request) -> dict[str, Any]:
    """Auditors only: verify the store itself (stream links, the ledger against every signed
    head, snapshots), then the audit view against it; `ok` means every item was checked."""
    if principal.role != AUDITOR:
        raise ApiError(403, "auditor_only", "verification covers every partner: auditors only")
    heads = request.app.state.heads
    return read_side.verify(None if heads is None else heads.signer.public_key)
