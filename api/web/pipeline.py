"""The pipeline page: where the partner's migrations stand, what is at risk, and what is due."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.routes.audit import partner_scope
from api.web.auth import Viewer
from api.web.charts import bars
from api.web.render import RISK_LABELS, STAGE_LABELS, page
from domain.rules import HORIZONS_DAYS
from domain.vocabulary import Risk, Stage

router = APIRouter(include_in_schema=False)

# The process in order; abandoned migrations are counted beside it, not in it.
FUNNEL = [Stage.INVITED, Stage.ACCEPTED, Stage.PROVISIONING, Stage.PROVISIONED, Stage.COMPLETED]
SEVERITY = {"critical": 0, "warning": 1}
ATTENTION_ROWS = 15
FLAGGED_LOOKUP = 100  # migrations looked at per flag


def scoped_partner(principal: Any, request: Request) -> str | None:
    """The partner a page shows: a partner key's own; an auditor's choice (or all)."""
    chosen = request.query_params.get("partner_id") or None
    if principal.partner_id is not None:
        return principal.partner_id  # a partner key never reads another's rows
    return partner_scope(principal, chosen[:100] if chosen else None)


@router.get("/pipeline")
def pipeline(request: Request, principal: Viewer) -> Response:
    read_side = request.app.state.read_side
    queries = read_side.queries
    now = queries.app.clock()
    today = now.date()
    partner_id = scoped_partner(principal, request)
    summary = queries.summary(now=now, partner_id=partner_id)
    counts = summary["overall"]
    stages = counts["stages"]
    funnel = bars(
        [
            (STAGE_LABELS[s], stages.get(s.value, 0), f"/migrations?{_only(partner_id, stage=s)}",
             "done" if s == Stage.COMPLETED else "", s.value)
            for s in FUNNEL
        ]
    )  # fmt: skip
    risks = sorted(
        ((r, n) for r, n in counts["risks"].items() if n),
        key=lambda item: (SEVERITY[RISK_LABELS[item[0]][1]], -item[1], item[0]),
    )
    licenses = counts["licenses"]
    license_bars = bars(
        [
            ("Original", licenses["original"], None, "", "original"),
            ("Provisioned (CSP)", licenses["provisioned"], None, "done", "provisioned"),
        ]
    )
    ending = [
        (
            days,
            counts["ending_unreplaced"][str(days)],
            (today + timedelta(days=days + 1)).isoformat(),
        )
        for days in HORIZONS_DAYS
    ]
    attention, flagged = _needs_attention(queries, now, partner_id, [r for r, _ in risks])
    soon = queries.deadlines(now=now, partner_id=partner_id, within_days=7)
    return page(
        request,
        "pipeline.html",
        title="Pipeline",
        active="/pipeline",
        today=today.isoformat(),
        partner_id=partner_id,
        partners=sorted(summary["partners"]) if principal.partner_id is None else [],
        total=counts["migrations"],
        abandoned=stages.get(Stage.ABANDONED.value, 0),
        funnel=funnel,
        risks=risks,
        licenses=licenses,
        license_bars=license_bars,
        ending=ending,
        attention=attention,
        flagged=flagged,
        overdue=sum(1 for d in soon if d["overdue"]),
        due_week=sum(1 for d in soon if not d["overdue"]),
        credits_awaiting=_awaiting(counts["credits"]),
    )


def _only(partner_id: str | None, **filters: str) -> str:
    return urlencode({**filters, **({"partner_id": partner_id} if partner_id else {})})


def _needs_attention(
    queries: Any, now: Any, partner_id: str | None, flagged: list[str]
) -> tuple[list[dict[str, Any]], int]:
    """The flagged migrations whose first action is most urgent (due now, then soonest) first:
    at most ATTENTION_ROWS of them, and how many flagged migrations were found in all (up to
    FLAGGED_LOOKUP per flag, each an indexed query)."""
    found: dict[str, dict[str, Any]] = {}
    for risk in flagged:
        items, _ = queries.list_migrations(
            now=now, partner_id=partner_id, risk=Risk(risk).value, limit=FLAGGED_LOOKUP
        )
        for item in items:
            found.setdefault(item["id"], item)

    def urgency(item: dict[str, Any]) -> tuple[Any, ...]:
        first = item["next_actions"][0] if item["next_actions"] else None
        worst = min((SEVERITY[RISK_LABELS[r][1]] for r in item["risks"]), default=2)
        if first is None:
            return (1, worst, "9999-12-31", item["customer_name"])
        due = first["due"] or ("0000-00-00" if first["urgent"] else "9999-12-31")  # now
        return (0 if first["urgent"] else 1, due, worst, item["customer_name"])

    return sorted(found.values(), key=urgency)[:ATTENTION_ROWS], len(found)


def _awaiting(credits: dict[str, Any]) -> int:
    """Credit requests billing support has not answered yet."""
    return max(0, credits["requested"] - credits["granted"] - credits["denied"])
