"""Pages: one Jinja2 environment, and the headers every page gets."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from domain.vocabulary import Risk, Stage

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Pages load nothing from elsewhere and run no inline script or style.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

STAGE_LABELS = {
    Stage.INVITED: "Invited",
    Stage.ACCEPTED: "Accepted",
    Stage.PROVISIONING: "Provisioning",
    Stage.PROVISIONED: "Provisioned",
    Stage.COMPLETED: "Completed",
    Stage.ABANDONED: "Abandoned",
}
# Plain words for each risk flag, and how bad it is ("critical": access, data or money lost).
RISK_LABELS: dict[str, tuple[str, str]] = {
    Risk.LICENSE_SHORTFALL: ("License shortfall", "critical"),
    Risk.CANCELLED_BEFORE_REPLACEMENT: ("Cancelled before replacement", "critical"),
    Risk.GRACE_PERIOD: ("Expired: in 30-day grace", "critical"),
    Risk.ACCESS_LOST: ("Access lost", "critical"),
    Risk.DATA_LOSS: ("Data deleted", "critical"),
    Risk.EARLY_CANCELLATION: ("Cancelled early", "warning"),
    Risk.CREDIT_NOT_REQUESTED: ("Credit not requested", "warning"),
    Risk.REASSIGNMENT_PENDING: ("Licenses to reassign", "critical"),
    Risk.AUTO_RENEW_ON: ("Auto-renew still on", "warning"),
    Risk.EXPIRING_UNREPLACED: ("Ending, not replaced", "critical"),
    Risk.ADMIN_ACCESS_EXPIRING: ("Admin access ending", "warning"),
    Risk.DOUBLE_BILLING: ("Double billing", "warning"),
}
DEADLINE_LABELS = {
    "auto_renew_off_by": "Turn auto-renew off",
    "access_lost": "Users lose access",
    "data_deleted": "Data deleted",
    "gdap_expires": "GDAP ends",
    "reduction_window_closes": "Seat reduction window closes",
    "credit_follow_up": "Follow up credit request",
}


def _when(value: Any) -> str:
    """A stored time as people read it: `2026-11-27 09:15 UTC`; a date as `2026-11-27`."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat() if isinstance(value, date) else str(value)


def _sentence(text: str) -> str:
    """A sentence starts with a capital (the domain's texts are written to be embedded too)."""
    return text[:1].upper() + text[1:]


def _query(base: dict[str, Any], **changes: Any) -> str:
    """A query string: `base` with `changes`, empty values left out."""
    merged = {**base, **changes}
    return urlencode(
        [(k, v) for k, v in merged.items() if v not in (None, "", [])],
        doseq=True,
    )


templates.env.filters["when"] = _when
templates.env.filters["sentence"] = _sentence
templates.env.globals.update(
    STAGE_LABELS=STAGE_LABELS,
    RISK_LABELS=RISK_LABELS,
    DEADLINE_LABELS=DEADLINE_LABELS,
    query=_query,
)


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    """A page, with the signed-in principal and the session's CSRF token in its context."""
    response = templates.TemplateResponse(
        request,
        name,
        {
            "principal": getattr(request.state, "principal", None),
            "csrf": getattr(request.state, "csrf", ""),
            **context,
        },
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    return response
