"""The optional headers of a single-event post, read by the route itself.

FastAPI reads each declared header parameter through its generic machinery (aliases, sequence
checks, one validation per field) on every request: for If-Match, Idempotency-Key and Prefer,
about 5 % of the server's CPU per single-event post on SQLite (py-spy, docs/performance.md).
`WriteHeaders` validates the three in one pydantic call, with the same constraints, the same
errors (422 `validation_error` with `loc: ["header", name]`) and the same OpenAPI parameters
(`openapi_parameters`, given to the route's `openapi_extra`). Only POST
/v1/migrations/{id}/events reads them this way: it is the route partner tools call most.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.schemas import HEADER_TEXT_PATTERN, IF_MATCH_PATTERN

IF_MATCH = (
    'The version you last saw (the ETag), bare (`3`), quoted (`"3"`) or weak (`W/"3"`); `*` '
    "means any version. Stale: 412 `version_conflict`; another shape: 422 `invalid_if_match`"
)
IDEMPOTENCY_KEY = (
    "Retries with the same key return the first response; not blank (400 `empty_idempotency_key`)"
)
PREFER = (
    "RFC 7240 preferences. `return=minimal`: the answer leaves the migration's state out (201 "
    "with `id`, `version` and the stored `events`, the ETag and Location headers, and "
    "`Preference-Applied: return=minimal`); `return=representation` (the default) includes it. "
    "Other preferences, and values that do not parse, are ignored"
)


def _header(name: str, description: str, max_length: int | None = None, pattern: str = "") -> Any:
    """A header field as FastAPI names and documents a header parameter (`pattern` is shown in
    the schema only: the route enforces what it means)."""
    return Field(
        alias=name.lower(),
        title=name,
        description=description,
        max_length=max_length,
        json_schema_extra={"pattern": pattern} if pattern else None,
    )


class WriteHeaders(BaseModel):
    model_config = ConfigDict(frozen=True)

    # The pattern is enforced by expected_version (422 invalid_if_match), not by pydantic.
    if_match: Annotated[str | None, _header("If-Match", IF_MATCH, 64, IF_MATCH_PATTERN)] = None
    idempotency_key: Annotated[
        str | None, _header("Idempotency-Key", IDEMPOTENCY_KEY, 200, HEADER_TEXT_PATTERN)
    ] = None
    prefer: Annotated[str | None, _header("Prefer", PREFER)] = None

    @classmethod
    def read(cls, request: Request) -> WriteHeaders:
        """The request's headers, as FastAPI would validate them as header parameters."""
        headers = request.headers
        given = {name: value for name in _NAMES if (value := headers.get(name)) is not None}
        if not given:
            return _NONE
        try:
            return cls.model_validate(given)
        except ValidationError as invalid:
            raise RequestValidationError(
                [
                    {"type": e["type"], "loc": ("header", *e["loc"]), "msg": e["msg"]}
                    for e in invalid.errors(include_url=False)
                ]
            ) from None


_NAMES = tuple(field.alias or name for name, field in WriteHeaders.model_fields.items())
_NONE = WriteHeaders()


def openapi_parameters() -> list[dict[str, Any]]:
    """The headers as OpenAPI parameters, as FastAPI writes declared header parameters (the
    null branch of each optional one is dropped with the others', api.app._tidy_parameters)."""
    properties = WriteHeaders.model_json_schema(by_alias=True)["properties"]
    parameters = []
    for name in _NAMES:
        schema = {k: v for k, v in properties[name].items() if k != "default"}
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": schema,
                "description": schema["description"],
            }
        )
    return parameters
