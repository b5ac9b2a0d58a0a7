"""Domain objects to JSON-able dicts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.migration import Migration, event_type
from domain.view import describe

# Library bookkeeping and the stream links (domain.chain) are not part of an event on the wire.
_METADATA = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "_prev",
    "_link",
}


def plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def event(e: Migration.Event) -> dict[str, Any]:
    fields = {k: plain(v) for k, v in vars(e).items() if k not in _METADATA}
    return {
        "type": event_type(e),
        "version": e.originator_version,
        "recorded_at": e.timestamp.isoformat(),
        **fields,
    }


def state(migration: Migration, now: datetime) -> dict[str, Any]:
    return describe(migration.id, migration.version, migration.state, now)


def described(past: Any, now: datetime) -> dict[str, Any]:
    """A migration as it stood in the past (`Tracker.as_of`), with its flags at that time, and
    the versions a business-time view had to leave out (`left_out`)."""
    return {**describe(past.id, past.version, past.state, now), "left_out": list(past.left_out)}


def recorded(migration: Migration, events: list[Migration.Event], now: datetime) -> dict[str, Any]:
    return {**stored(migration, events), "state": state(migration, now)}


def stored(migration: Migration, events: list[Migration.Event]) -> dict[str, Any]:
    """What a write stored, without the migration's state."""
    return {
        "id": str(migration.id),
        "version": migration.version,
        "events": [event(e) for e in events],
    }


def minimal(body: dict[str, Any]) -> dict[str, Any]:
    """A write's answer (`recorded` or `stored`) without the state: `Prefer: return=minimal`."""
    return {key: body[key] for key in ("id", "version", "events")}
