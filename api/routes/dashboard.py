"""The dashboard: counts by stage and risk, from the summary view."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import CurrentPrincipal, QueriesDep
from api.errors import errors_for
from api.routes.audit import partner_scope
from api.schemas import DashboardSummary
from domain.vocabulary import Risk, Stage

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])

_CENTS = Decimal("0.01")


def _money(text: str) -> str:
    """A summed amount as money is written: at least two decimals ("120" -> "120.00"), more
    only when the amounts had them ("0.125" stays)."""
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(_CENTS)
    return format(value, "f")


def _complete(counts: dict[str, Any]) -> dict[str, Any]:
    """The view's counts with every stage and every risk flag present (0 when none)."""
    credits = counts["credits"]
    return {
        **counts,
        "stages": {s.value: int(counts["stages"].get(s.value, 0)) for s in Stage},
        "risks": {r.value: int(counts["risks"].get(r.value, 0)) for r in Risk},
        "credits": {
            **credits,
            "granted_amount": {c: _money(a) for c, a in credits["granted_amount"].items()},
        },
    }


@router.get(
    "/summary",
    response_model=DashboardSummary,
    summary="Get the dashboard summary",
    responses=errors_for(401, 403, 422, 503),
)
def get_dashboard_summary(
    principal: CurrentPrincipal,
    queries: QueriesDep,
    partner_id: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Auditors: one partner. A partner key may name only its own (else 403).",
        ),
    ] = None,
) -> dict[str, Any]:
    """Counts of migrations by stage and risk flag, licenses, originals ending unreplaced, and
    credits: `overall` and per partner (a partner key sees its own partner only). The risk
    flags and `ending_unreplaced` are computed at the time of the request."""
    found = queries.summary(
        now=queries.app.clock(), partner_id=partner_scope(principal, partner_id)
    )
    return {
        "overall": _complete(found["overall"]),
        "partners": {pid: _complete(counts) for pid, counts in found["partners"].items()},
    }
