"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import metrics_access
from api.errors import ERROR_RESPONSES, STORE_ERRORS, error_response
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Check the process is alive")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: ERROR_RESPONSES[503]},
    summary="Check the service is ready",
)
def readyz(request: Request) -> Any:
    """The store answers and no view lags more than the configured maximum.

    The body holds the status, each view's lag (`{"views": {name: {"lag": n}}}`) and this
    process's projector (`"projector": "active" | "standby" | "off"`) only: no store head,
    position or count, which are global figures and this route is open.
    """
    state = request.app.state
    try:
        state.tracker.recorder.max_notification_id()
    except STORE_ERRORS:
        return error_response(503, "store_unavailable", "the event store is unreachable")
    if state.read_side is None:
        return error_response(503, "read_side_unavailable", "the read side is not running")
    views = {v: {"lag": x["lag"]} for v, x in state.read_side.lag().items()}
    projector = state.read_side.role()
    if any(x["lag"] > state.settings.max_lag for x in views.values()):
        return error_response(
            503,
            "not_ready",
            "a view lags too far behind the store",
            {"views": views, "max_lag": state.settings.max_lag, "projector": projector},
        )
    return JSONResponse({"status": "ready", "views": views, "projector": projector})


@router.get(
    "/metrics",
    response_class=Response,
    summary="Read the Prometheus metrics",
    dependencies=[Depends(metrics_access)],
    responses={401: ERROR_RESPONSES[401], 403: ERROR_RESPONSES[403]},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics (global figures): with `CSP_TRACKER_METRICS_TOKEN` set, for
    `Authorization: Bearer <that token>` only (else 401); without it, for loopback clients only
    (127.0.0.0/8 or ::1, else 403)."""
    state = request.app.state
    state.metrics.observe_lag(state.read_side)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
