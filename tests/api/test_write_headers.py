"""The single post's headers, read by the route (api/headers.py), against FastAPI's own reading.

Given a FastAPI route declaring If-Match, Idempotency-Key and Prefer as header parameters with
the same constraints, when either reads the same headers, then both accept the same values
with the same results, refuse the same ones with the same errors, and document them alike.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api import headers
from api.app import _tidy_parameters
from api.headers import WriteHeaders
from api.schemas import HEADER_TEXT_PATTERN, IF_MATCH_PATTERN

declared = FastAPI()


def _declared(description: str, max_length: int | None = None, pattern: str = "") -> Any:
    """A header parameter as a route would declare it."""
    extra = {"pattern": pattern} if pattern else None
    return Header(description=description, max_length=max_length, json_schema_extra=extra)


@declared.post("/declared")
def read_declared(
    if_match: Annotated[str | None, _declared(headers.IF_MATCH, 64, IF_MATCH_PATTERN)] = None,
    idempotency_key: Annotated[
        str | None, _declared(headers.IDEMPOTENCY_KEY, 200, HEADER_TEXT_PATTERN)
    ] = None,
    prefer: Annotated[str | None, _declared(headers.PREFER)] = None,
) -> dict[str, Any]:
    return {"if_match": if_match, "idempotency_key": idempotency_key, "prefer": prefer}


@declared.post("/read")
def read_here(request: Request) -> dict[str, Any]:
    return WriteHeaders.read(request).model_dump()


@declared.exception_handler(RequestValidationError)
def refused(request: Request, exc: RequestValidationError) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        [{k: e[k] for k in ("type", "loc", "msg")} for e in exc.errors()], status_code=422
    )


client = TestClient(declared)
# Header values as HTTP carries them (visible ASCII), up to past the longest limit.
value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=260)


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={"If-Match": value, "Idempotency-Key": value, "Prefer": value},
    )
)
def test_both_read_the_same_headers_alike(sent: dict[str, str]) -> None:
    fastapi = client.post("/declared", headers=sent)
    ours = client.post("/read", headers=sent)
    assert (ours.status_code, ours.json()) == (fastapi.status_code, fastapi.json())


@pytest.mark.parametrize(
    "sent",
    [
        {"If-Match": "9" * 65},
        {"Idempotency-Key": "k" * 201},
        {"If-Match": "9" * 65, "Idempotency-Key": "k" * 201},
        {"If-Match": "9" * 64, "Idempotency-Key": "k" * 200, "Prefer": "return=minimal"},
    ],
)
def test_at_and_past_the_limits(sent: dict[str, str]) -> None:
    fastapi = client.post("/declared", headers=sent)
    ours = client.post("/read", headers=sent)
    assert (ours.status_code, ours.json()) == (fastapi.status_code, fastapi.json())


def test_they_are_documented_as_declared_header_parameters() -> None:
    schema = declared.openapi()
    _tidy_parameters(schema)
    expected = schema["paths"]["/declared"]["post"]["parameters"]
    documented = {"paths": {"/x": {"post": {"parameters": headers.openapi_parameters()}}}}
    _tidy_parameters(documented)
    assert documented["paths"]["/x"]["post"]["parameters"] == expected
