"""Dependencies: the one Tracker and read side of the app, and the caller's API key."""

from __future__ import annotations

import ipaddress
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from api.errors import ApiError
from domain.access import AUDITOR, authenticate, key_id
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context
from domain.migration import Migration

_CACHE_SECONDS = 5.0
_CORRELATION = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: str
    partner_id: str | None
    # Web sessions of this key begun before this are over (it signed out).
    sessions_ended_at: datetime | None = None

    @property
    def read_only(self) -> bool:
        return self.role == AUDITOR

    def may_see(self, partner_id: str | None) -> bool:
        return self.partner_id is None or self.partner_id == partner_id

    def ensure_writer(self) -> None:
        if self.read_only:
            raise ApiError(403, "read_only", "this key may only read", role=self.role)

    def step(self, correlation_id: str, event: Any) -> tuple[Context, Command]:
        """An event as read from the wire (api.schemas), as this key records it: the context
        (who, role, correlation id, the event's own business time) and the command."""
        ctx = Context(self.name, self.role, correlation_id, event.occurred_at, self.partner_id)
        return ctx, Command(event.type, event.model_dump(exclude={"type", "occurred_at"}))


class KeyCache:
    """Principals of the API keys presented lately, kept a few seconds per process.

    A key revoked, issued or signed out by this process or another one (such as `csp-tracker
    keys revoke`) takes effect at the very next request all the same. The tracker's repository
    follows the store's log before each lookup (once per appender batch) and numbers every
    change it sees to an aggregate, this process's saves and other processes' events alike
    (domain.repository); an entry is used only while its key's aggregate has not changed since
    the entry was loaded. Other events (the writes of every request) leave the entries alone.
    """

    def __init__(self, seconds: float = _CACHE_SECONDS) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        # token -> (expires, the repository's change number when loaded, principal)
        self._entries: dict[str, tuple[float, int, Principal | None]] = {}

    def get(self, tracker: Tracker, token: str) -> Principal | None:
        repository = tracker.repository
        repository.catch_up()
        loaded = repository.generation
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(token)
        if hit is not None and hit[0] > now and not repository.changed_since(hit[1], key_id(token)):
            return hit[2]
        key = authenticate(tracker, token)
        principal = (
            None
            if key is None
            else Principal(
                key.key_id,
                key.name,
                key.role,
                key.partner_id,
                getattr(key, "sessions_ended_at", None),  # keys snapshotted before it existed
            )
        )
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token] = (now + self._seconds, loaded, principal)
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


@dataclass(frozen=True)
class Credentials:
    """An API key as presented, not looked up yet: `principal()` looks it up (in the calling
    thread: it reads the store)."""

    keys: KeyCache
    tracker: Tracker
    token: str

    def principal(self) -> Principal:
        # Even a cached key costs a store read: the cache asks the store whether any key was
        # revoked since (one indexed query), so that a revocation applies at the next request.
        principal = self.keys.get(self.tracker, self.token)
        if principal is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        return principal


class ApiKeyBearer(HTTPBearer):
    """`Authorization: Bearer <API key>`: FastAPI's HTTPBearer (the OpenAPI security scheme),
    answering the key as presented in the same step. A dependency of its own would cost FastAPI
    another round of dependency solving on every request (about 20 µs, a few per cent of a
    single-event post)."""

    async def __call__(self, request: Request) -> Credentials:  # type: ignore[override]
        credentials = await super().__call__(request)
        token = credentials.credentials.strip() if credentials else ""
        if not token:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>")
        return Credentials(request.app.state.keys, request.app.state.tracker, token)


get_credentials = ApiKeyBearer(
    auto_error=False,
    scheme_name="HTTPBearer",
    description="An API key from `csp-tracker keys create`",
)


async def get_principal(
    credentials: Annotated[Credentials, Depends(get_credentials)],
) -> Principal:
    return await run_in_threadpool(credentials.principal)


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine's: 127.0.0.0/8 or ::1 (IPv4-mapped too).

    Anything else is not, including no address and names such as TestClient's "testclient".
    """
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def metrics_access(request: Request) -> None:
    """`/metrics` shows global figures: a scraper's bearer token, or a loopback client.

    With `metrics_token` set, `Authorization: Bearer <metrics_token>` is required (else 401,
    whatever the client's address; an API key is not a metrics token). Without it, only
    loopback clients are answered (else 403).
    """
    secret = request.app.state.settings.metrics_token
    expected = secret.get_secret_value() if secret is not None else ""
    if expected:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
        if not secrets.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <metrics token>")
        return
    client = request.client
    if not is_loopback(client.host if client else None):
        raise ApiError(
            403,
            "metrics_loopback_only",
            "/metrics answers loopback clients only, unless CSP_TRACKER_METRICS_TOKEN is set",
        )


def correlation_of(request: Request) -> str:
    """The request's correlation id (its X-Correlation-Id, or a new one: api.metrics)."""
    return str(request.state.correlation_id)


async def correlation_id(request: Request) -> str:
    return correlation_of(request)


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
# For a plain `def` route that reads the store anyway: it calls `.principal()` first thing, in
# its own worker thread, and saves the threadpool hop of CurrentPrincipal (a large part of a
# small request's cost).
PresentedKey = Annotated[Credentials, Depends(get_credentials)]
CorrelationId = Annotated[str, Depends(correlation_id)]
AuditCursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page")
]


async def reject_nul(request: Request) -> None:
    """Query parameters with NUL characters are refused (PostgreSQL text cannot hold them); the
    schema says so with each string parameter's pattern. Parameters the route does not declare
    are ignored, as FastAPI ignores them: they reach nothing."""
    if not request.scope.get("query_string"):
        return  # most requests (every write): nothing to look at, not even the route's names
    declared = _query_names(request.scope.get("route"))
    for name, value in request.query_params.multi_items():
        if name in declared and "\x00" in value:
            raise ApiError(422, "invalid_input", "query parameters must not contain NUL", name=name)


def _query_names(route: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included (a few nodes)."""
    found: set[str] = set()
    pending = [route.dependant] if isinstance(route, APIRoute) else []
    while pending:
        dependant = pending.pop()
        found.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    return found
