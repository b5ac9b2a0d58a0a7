"""Every refusal becomes one JSON shape, {"error", "message", "details"}, mapped here only.

| raised                                   | status | error                       |
|------------------------------------------|--------|-----------------------------|
| InvalidInput, RuleViolated, validation   | 422    | its code / validation_error |
| body that is not UTF-8 (FastAPI)         | 400    | invalid_body                |
| NotPermitted, ApiError(read_only)        | 403    | role_not_permitted / ...    |
| NotFound                                 | 404    | its code                    |
| Conflict                                 | 409    | its code                    |
| VersionConflict                          | 412    | version_conflict            |
| store unreachable                        | 503    | store_unavailable           |
| a single post queued past its deadline   | 503    | append_timeout              |
| anything else                            | 500    | internal_error              |

Before the app reads a body, api/body.py refuses with the same shape: 401 unauthorized (no
credentials), 413 body_too_large, 400 empty_idempotency_key / invalid_encoding /
duplicate_key. A 422 validation_error lists at most MAX_ERRORS errors (`count` has the total),
and any echo of the client's input is cut to MAX_ECHO characters.

Each route documents only the error statuses it can answer: `responses=errors_for(401, ...)`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from domain.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    NotPermitted,
    RuleViolated,
    VersionConflict,
)

log = logging.getLogger("csp_tracker.api")

# Most specific first: VersionConflict is a Conflict.
STATUS: list[tuple[type[DomainError], int]] = [
    (VersionConflict, 412),
    (Conflict, 409),
    (NotFound, 404),
    (NotPermitted, 403),
    (RuleViolated, 422),
    (InvalidInput, 422),
]
STORE_ERRORS = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    sqlite3.OperationalError,
)


class ApiError(Exception):
    """A refusal decided by the API itself (auth, headers, read side)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class ErrorBody(BaseModel):
    error: str
    message: str
    details: dict[str, Any] | list[Any] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (
            400,
            "The body was refused before validation: not UTF-8 (`invalid_body`), UTF-16/32 or "
            "with a byte order mark (`invalid_encoding`), a JSON key repeated "
            "(`duplicate_key`), or an empty Idempotency-Key (`empty_idempotency_key`)",
        ),
        (401, "Missing or invalid API key"),
        (403, "Not permitted (role, read-only key, or another partner)"),
        (404, "Not found (or another partner's)"),
        (409, "Conflicts with what is stored"),
        (412, "If-Match version is stale"),
        (413, "The body is larger than the limit (`body_too_large`)"),
        (422, "Invalid input or a business rule refused"),
        (503, "Store or read side unavailable"),
    ]
}


def errors_for(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of one route: only the statuses it can answer.
    `descriptions` replaces a status's description, keyed `e400`, `e404`, ..."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry = dict(ERROR_RESPONSES[status])
        if f"e{status}" in descriptions:
            entry["description"] = descriptions[f"e{status}"]
        responses[status] = entry
    return responses


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": code, "message": message, "details": details or {}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: DomainError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 422


# Validation errors listed in a 422, and the longest echo of the client's input in one.
MAX_ERRORS = 20
MAX_ECHO = 200
MAX_LOC = 10


def _clip(value: Any, limit: int = MAX_ECHO) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the schema documents for the request's path."""
    path = request.url.path
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in item if method in _METHODS}
    return sorted(methods)


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


ErrorPage = Callable[[Request, int, str, str], Response | None]


def register(app: FastAPI, error_page: ErrorPage | None = None) -> None:
    """The handlers; `error_page(request, status, code, message)` may answer a browser's
    request for a page with HTML instead (None from it: the JSON shape)."""

    def as_page(request: Request, status: int, code: str, message: str) -> Response | None:
        return None if error_page is None else error_page(request, status, code, message)

    @app.exception_handler(DomainError)
    def domain_error(request: Request, exc: DomainError) -> Response:
        status = status_of(exc)
        if (shown := as_page(request, status, exc.code, exc.message)) is not None:
            return shown
        return error_response(status, exc.code, exc.message, jsonable(exc.details))

    @app.exception_handler(ApiError)
    def api_error(request: Request, exc: ApiError) -> Response:
        if (shown := as_page(request, exc.status, exc.code, exc.message)) is not None:
            return shown
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, jsonable(exc.details), headers)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # Bounded whatever the body: the first MAX_ERRORS errors, each echo of the client's
        # input (a field name in `loc`, a message quoting a value) cut to MAX_ECHO characters;
        # `count` is how many there were in all.
        found = exc.errors()
        errors = [
            {
                "loc": [_clip(part) for part in jsonable(list(e.get("loc", ()))[:MAX_LOC])],
                "msg": _clip(str(e.get("msg", ""))),
                "type": _clip(str(e.get("type", ""))),
            }
            for e in found[:MAX_ERRORS]
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        message = _clip(f"{where}: {first['msg']}", 2 * MAX_ECHO)
        if (shown := as_page(request, 422, "validation_error", message)) is not None:
            return shown
        return error_response(
            422, "validation_error", message, {"errors": errors, "count": len(found)}
        )

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        names = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
        code = names.get(exc.status_code, "http_error")
        if (shown := as_page(request, exc.status_code, code, str(exc.detail))) is not None:
            return shown
        headers = exc.headers
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            # FastAPI names the methods of the first route of the path only; a path served by
            # several routes (GET and POST /v1/migrations) allows all of theirs.
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    for exc_class in STORE_ERRORS:

        @app.exception_handler(exc_class)
        def store_error(request: Request, exc: Exception) -> Response:
            log.warning("store unavailable: %s", exc)
            message = "the event store is unreachable"
            if (shown := as_page(request, 503, "store_unavailable", message)) is not None:
                return shown
            return error_response(503, "store_unavailable", message)

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        message = "an unexpected error occurred"
        if (shown := as_page(request, 500, "internal_error", message)) is not None:
            return shown
        return error_response(500, "internal_error", message)
