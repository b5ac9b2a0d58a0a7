"""The dashboard: counts by stage and risk, from the summary view."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import CurrentPrincipal, QueriesDep
from api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"], responses=ERROR_RESPONSES)


@router.get("/summary", response_model=dict[str, Any])
def summary(
    principal: CurrentPrincipal,
    queries: QueriesDep,
    partner_id: Annotated[str | None, Query(max_length=100, description="Auditors")] = None,
) -> dict[str, Any]:
    """Counts of migrations by stage and risk flag; a partner key sees its own partner."""
    return queries.summary(now=queries.app.clock(), partner_id=principal.partner_id or partner_id)
