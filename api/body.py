"""Request bodies under /v1/, refused early and cheaply, before the app reads or parses them.

For POST, PUT and PATCH under /v1/, in this order:

| check                                                  | status | error                 |
|--------------------------------------------------------|--------|-----------------------|
| no credentials in `Authorization` (body never read)    | 401    | unauthorized          |
| Content-Length above the cap (body never read)         | 413    | body_too_large        |
| body grows past the cap while streaming (chunked too)  | 413    | body_too_large        |
| an empty `Idempotency-Key` header                      | 400    | empty_idempotency_key |
| JSON body in UTF-16/32, or with a byte order mark      | 400    | invalid_encoding      |
| JSON object with a key repeated                        | 400    | duplicate_key         |

The key itself is checked by the app's dependency (api.deps.get_principal); here a request
with no credentials at all is refused before a byte of its body is read. Any scheme counts as
credentials (the Partner Center webhook signs with `Authorization: Signature ...`). At most
`max_body_bytes` of a body are held; the app then receives it unchanged, so JSON that does
not parse keeps FastAPI's answer (422 validation_error), as do bytes that are not UTF-8
(400 invalid_body). Refusals sent before the body was read close the connection.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

DEFAULT_MAX_BODY_BYTES = 1_048_576
GUARDED_METHODS = frozenset({"POST", "PUT", "PATCH"})
PREFIX = "/v1/"
# Longest echo of a client's key in an error body.
_ECHO = 200
_BOMS = (
    codecs.BOM_UTF8,
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.details = status, code, message, details


class BodyGuard:
    """Pure ASGI middleware: credentials present, body capped, JSON encoding and keys sound."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in GUARDED_METHODS
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            if not _has_credentials(headers.get("authorization")):
                raise _Refusal(401, "unauthorized", "send Authorization: Bearer <API key>")
            self._check_length(headers.get("content-length"))
            body = await self._read(receive)
        except _Refusal as refusal:
            await _refuse(scope, receive, send, refusal, close=True)  # the body left unread
            return
        if body is None:
            return  # the client went away: nobody to answer
        try:
            _check_idempotency_key(headers.getlist("idempotency-key"))
            if body and _is_json(headers.get("content-type")):
                _check_json(body)
        except _Refusal as refusal:
            await _refuse(scope, receive, send, refusal, close=False)
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only http.disconnect is left

        await self.app(scope, replay, send)

    def _check_length(self, value: str | None) -> None:
        if value is None:
            return
        try:
            length = int(value)
        except ValueError:
            return  # the server refuses a malformed Content-Length itself
        if length > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or a refusal as soon as it passes the cap (the rest unread); None
        when the client disconnected first."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _too_large(limit: int) -> _Refusal:
    return _Refusal(
        413, "body_too_large", f"request bodies are limited to {limit} bytes", max_bytes=limit
    )


def _has_credentials(authorization: str | None) -> bool:
    """`<scheme> <credentials>` with both present (as fastapi.security splits it)."""
    scheme, _, credentials = (authorization or "").partition(" ")
    return bool(scheme.strip() and credentials.strip())


def _check_idempotency_key(values: list[str]) -> None:
    if any(not value.strip() for value in values):
        raise _Refusal(
            400,
            "empty_idempotency_key",
            "Idempotency-Key must not be empty; leave the header out to send no key",
        )


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI parses the body as JSON: application/json or application/*+json (with
    its default strict_content_type, a body without a Content-Type is not parsed)."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return obj


def _check_json(body: bytes) -> None:
    # json.loads(bytes), which the app uses, guesses UTF-16/32 from NUL bytes and skips a
    # BOM: refuse what it would decode as anything but plain UTF-8.
    encoding = json.detect_encoding(body)
    if body.startswith(_BOMS) or encoding != "utf-8":
        raise _Refusal(
            400,
            "invalid_encoding",
            "JSON bodies must be UTF-8 without a byte order mark",
            detected=encoding,
        )
    try:
        text = body.decode("utf-8", "surrogatepass")  # as json.loads(bytes) decodes
    except UnicodeDecodeError:
        return  # not UTF-8 at all: the app answers 400 invalid_body
    try:
        json.loads(text, object_pairs_hook=_unique_keys)
    except _Duplicate as duplicate:
        key = duplicate.key if len(duplicate.key) <= _ECHO else duplicate.key[:_ECHO] + "…"
        raise _Refusal(
            400, "duplicate_key", f"the key {key!r} appears twice in one JSON object", key=key
        ) from None
    except (ValueError, RecursionError):
        return  # not JSON: the app answers as it always has (422 validation_error)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, refusal: _Refusal, *, close: bool
) -> None:
    headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else {}
    if close:
        # The body is left unread: close rather than drain it.
        headers["Connection"] = "close"
    response = error_response(
        refusal.status, refusal.code, refusal.message, refusal.details, headers
    )
    await response(scope, receive, send)
