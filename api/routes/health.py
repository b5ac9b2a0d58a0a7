"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import ERROR_RESPONSES, STORE_ERRORS, error_response
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, responses={503: ERROR_RESPONSES[503]})
def readyz(request: Request) -> Any:
    """The store answers and no view lags more than the configured maximum."""
    state = request.app.state
    try:
        head = state.tracker.recorder.max_notification_id() or 0
    except STORE_ERRORS:
        return error_response(503, "store_unavailable", "the event store is unreachable")
    if state.read_side is None:
        return error_response(503, "read_side_unavailable", "the read side is not running")
    lag = state.read_side.lag()
    behind = {v: x["lag"] for v, x in lag.items() if x["lag"] > state.settings.max_lag}
    if behind:
        return error_response(
            503,
            "not_ready",
            "a view lags too far behind the store",
            {"views": lag, "max_lag": state.settings.max_lag, "head": head},
        )
    return JSONResponse({"status": "ready", "head": head, "views": lag})


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    state = request.app.state
    state.metrics.observe_lag(state.read_side)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
