"""Dependencies: the one Tracker and read side of the app, and the caller's API key."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from domain.access import AUDITOR, authenticate
from domain.application import Tracker
from domain.migration import Migration

_CACHE_SECONDS = 5.0
_CORRELATION = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: str
    partner_id: str | None

    @property
    def read_only(self) -> bool:
        return self.role == AUDITOR

    def may_see(self, partner_id: str | None) -> bool:
        return self.partner_id is None or self.partner_id == partner_id

    def ensure_writer(self) -> None:
        if self.read_only:
            raise ApiError(403, "read_only", "this key may only read", role=self.role)


class KeyCache:
    """Token lookups are one store read each; keep them a few seconds per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def peek(self, token: str) -> tuple[bool, Principal | None]:
        """(True, principal) for a fresh entry; (False, None) when the store must be asked."""
        with self._lock:
            hit = self._entries.get(token)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def get(self, tracker: Tracker, token: str) -> Principal | None:
        now = time.monotonic()
        found, principal = self.peek(token)
        if found:
            return principal
        key = authenticate(tracker, token)
        principal = (
            None if key is None else Principal(key.key_id, key.name, key.role, key.partner_id)
        )
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token] = (now + _CACHE_SECONDS, principal)
        return principal

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


async def get_tracker(request: Request) -> Tracker:
    return request.app.state.tracker


async def get_read_side(request: Request) -> Any:
    read_side = request.app.state.read_side
    if read_side is None:
        raise ApiError(503, "read_side_unavailable", "the read side is not running")
    return read_side


async def get_queries(request: Request) -> Any:
    return (await get_read_side(request)).queries


_bearer = HTTPBearer(auto_error=False, description="An API key from `csp-tracker keys create`")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # Async so that a cached key costs no threadpool hop; only a miss reads the store.
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>")
    keys: KeyCache = request.app.state.keys
    found, principal = keys.peek(token)
    if not found:
        principal = await run_in_threadpool(keys.get, request.app.state.tracker, token)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    return principal


async def correlation_id(request: Request) -> str:
    return request.state.correlation_id


def new_correlation_id(header: str | None) -> str:
    if header and _CORRELATION.match(header):
        return header
    return str(uuid4())


def own_migration(tracker: Tracker, migration_id: UUID, principal: Principal) -> Migration:
    """The migration, if this key may see it; another partner's is simply not found."""
    migration = tracker.get(migration_id)
    if not principal.may_see(migration.state.partner_id):
        raise ApiError(404, "migration_not_found", f"no migration {migration_id}")
    return migration


TrackerDep = Annotated[Tracker, Depends(get_tracker)]
QueriesDep = Annotated[Any, Depends(get_queries)]
ReadSideDep = Annotated[Any, Depends(get_read_side)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
CorrelationId = Annotated[str, Depends(correlation_id)]
AuditCursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page")
]


async def reject_nul(request: Request) -> None:
    """Query strings with NUL characters are refused (PostgreSQL text cannot hold them)."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise ApiError(422, "invalid_input", "query parameters must not contain NUL", name=name)
