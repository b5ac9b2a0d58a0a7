"""API keys: who may call the HTTP API, stored as small aggregates in the event store.

Only the SHA-256 of a token is stored. A key's aggregate id is uuid5 of that hash, so
authenticating a request is one direct `repository.get`. A single registry aggregate lists
the keys by name (names are unique), which is what `keys list` and `keys revoke` read.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import Conflict, InvalidInput, NotFound
from domain.partner import Partner
from domain.vocabulary import PARTNER_ROLES

_NS = uuid5(NAMESPACE_URL, "urn:csp-tracker")
AUDITOR = "auditor"
KEY_ROLES = frozenset({*(r.value for r in PARTNER_ROLES), AUDITOR})
TOKEN_PREFIX = "csp_"
MAX_TOKEN_LENGTH = 200


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def key_id(token: str) -> UUID:
    """The id of the ApiKey aggregate a token names (whether or not it exists)."""
    return ApiKey.key(token_hash(token))


class ApiKey(Aggregate):
    TOPIC = "csp_tracker.access:ApiKey"

    class Event(Aggregate.Event):
        pass

    class Issued(Event, Aggregate.Created):
        TOPIC = "csp_tracker.access:issued"
        name: str
        role: str
        partner_id: str | None
        token_sha256: str

    Created = Issued

    class Revoked(Event):
        TOPIC = "csp_tracker.access:revoked"

        def apply(self, aggregate: ApiKey) -> None:
            aggregate.revoked = True

    class SessionsEnded(Event):
        """The key's holder signed out of the web pages: every session of this key begun
        before `at` is over (a session cookie alone cannot be taken back)."""

        TOPIC = "csp_tracker.access:sessions_ended"
        at: datetime

        def apply(self, aggregate: ApiKey) -> None:
            aggregate.sessions_ended_at = self.at

    def __init__(self, name: str, role: str, partner_id: str | None, token_sha256: str) -> None:
        self.name = name
        self.role = role
        self.partner_id = partner_id
        self.token_sha256 = token_sha256
        self.revoked = False
        self.sessions_ended_at: datetime | None = None

    @staticmethod
    def key(token_sha256: str) -> UUID:
        return uuid5(_NS, f"apikey:{token_sha256}")

    @property
    def key_id(self) -> str:
        return self.token_sha256[:12]

    def revoke(self) -> None:
        if not self.revoked:
            self.trigger_event(self.Revoked)


class KeyRegistry(Aggregate):
    """Names of all keys ever issued, each to its key's aggregate id."""

    TOPIC = "csp_tracker.access:KeyRegistry"
    ID = uuid5(_NS, "apikey-registry")

    class Event(Aggregate.Event):
        pass

    class Started(Event, Aggregate.Created):
        TOPIC = "csp_tracker.access:registry_started"

    Created = Started

    class Added(Event):
        TOPIC = "csp_tracker.access:key_added"
        name: str
        key_id: UUID

        def apply(self, aggregate: KeyRegistry) -> None:
            aggregate.names[self.name] = self.key_id

    def __init__(self) -> None:
        self.names: dict[str, UUID] = {}


@dataclass(frozen=True)
class IssuedKey:
    token: str  # shown once, never stored
    key: ApiKey


def issue_key(app: Application[UUID], name: str, role: str, partner_id: str | None) -> IssuedKey:
    """Create a key; `partner_id` must already be registered when given."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("invalid_name", "a key needs a name of 1 to 100 characters")
    if role not in KEY_ROLES:
        raise InvalidInput(
            "invalid_role", f"role must be one of: {', '.join(sorted(KEY_ROLES))}", role=role
        )
    if role != AUDITOR and not partner_id:
        raise InvalidInput("partner_required", f"a {role} key must be bound to a partner")
    if partner_id:
        try:
            app.repository.get(Partner.key(partner_id))
        except AggregateNotFoundError:
            raise NotFound("unknown_partner", f"partner {partner_id!r} is not registered") from None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = token_hash(token)
    for _attempt in range(3):
        registry = _registry(app)
        if name in registry.names:
            raise Conflict("key_name_taken", f"a key named {name!r} exists", name=name)
        key = ApiKey._create(
            ApiKey.Issued,
            id=ApiKey.key(digest),
            name=name,
            role=role,
            partner_id=partner_id or None,
            token_sha256=digest,
        )
        registry.trigger_event(KeyRegistry.Added, name=name, key_id=key.id)
        try:
            app.save(registry, key)
        except IntegrityError:
            continue  # another key was added concurrently: reload the registry and retry
        return IssuedKey(token, key)
    raise Conflict("registry_busy", "could not add the key; try again")


def authenticate(app: Application[UUID], token: str) -> ApiKey | None:
    """The live key for `token`, or None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = token_hash(token)
    try:
        key: Aggregate = app.repository.get(key_id(token))
    except AggregateNotFoundError:
        return None
    if not isinstance(key, ApiKey) or key.revoked:
        return None
    if not secrets.compare_digest(key.token_sha256, digest):
        return None
    return key


def end_sessions(app: Application[UUID], token: str, at: datetime) -> None:
    """End every web session of the key `token` begun before `at` (sign-out)."""
    key = authenticate(app, token)
    if key is not None:
        key.trigger_event(ApiKey.SessionsEnded, at=at)
        app.save(key)


def list_keys(app: Application[UUID]) -> list[ApiKey]:
    registry = _registry(app)
    return [app.repository.get(key_id) for key_id in registry.names.values()]


def revoke_key(app: Application[UUID], name_or_id: str) -> ApiKey:
    for key in list_keys(app):
        if name_or_id in (key.name, key.key_id):
            key.revoke()
            app.save(key)
            return key
    raise NotFound("unknown_key", f"no key named {name_or_id!r}")


def _registry(app: Application[UUID]) -> KeyRegistry:
    try:
        return app.repository.get(KeyRegistry.ID)
    except AggregateNotFoundError:
        return KeyRegistry._create(KeyRegistry.Started, id=KeyRegistry.ID)
