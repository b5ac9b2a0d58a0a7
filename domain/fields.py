"""Reading a command's fields: each reader returns a normalised value or refuses with
`invalid_<field>` (or `missing_<field>`). The API validates the wire first; these keep the
domain safe for every other caller (CLI, demo, tests)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.errors import Conflict, InvalidInput, NotFound
from domain.state import MigrationState, Original, Replacement
from domain.vocabulary import parse

Fields = Mapping[str, Any]
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _get(f: Fields, name: str) -> Any:
    if f.get(name) is None:
        raise InvalidInput(f"missing_{name}", f"{name} is required", field=name)
    return f[name]


def text(f: Fields, name: str) -> str:
    value = _get(f, name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"invalid_{name}", f"{name} must not be empty", field=name)
    return value.strip()


def optional_text(f: Fields, name: str) -> str | None:
    return None if f.get(name) is None else text(f, name)


def licenses(f: Fields, name: str = "licenses") -> int:
    value = _get(f, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(
            f"invalid_{name}", f"{name} must be a whole number of at least 1", field=name
        )
    return value


def choice(f: Fields, name: str, enum: type[StrEnum]) -> str:
    return parse(enum, _get(f, name), name)


def flag(f: Fields, name: str, default: bool) -> bool:
    value = f.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"invalid_{name}", f"{name} must be true or false", field=name)
    return value


def day(f: Fields, name: str) -> date:
    value = _get(f, name)
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidInput(f"invalid_{name}", f"{name} must be a date", field=name)
    return value


def instant(f: Fields, name: str) -> datetime | None:
    value = f.get(name)
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"invalid_{name}", f"{name} must be a time with a time zone", field=name)
    return value


def amount(f: Fields, name: str) -> Decimal | None:
    value = f.get(name)
    if value is None:
        return None
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput(f"invalid_{name}", f"{name} must be a decimal number", field=name)
    return value


def tenant_domain(f: Fields, name: str = "tenant_id") -> str:
    value = text(f, name).lower()
    if len(value) > 253 or not _DOMAIN.match(value):
        raise InvalidInput(
            f"invalid_{name}", f"{name} must be the tenant's domain name", field=name
        )
    return value


def tenant_guid(f: Fields, name: str = "tenant_guid") -> str | None:
    value = f.get(name)
    if value is None:
        return None
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise InvalidInput(
            f"invalid_{name}", f"{name} must be the Entra tenant id (a GUID)", field=name
        ) from None


def subscription_ids(f: Fields, name: str) -> list[str]:
    """One id or a list of ids, in order, without repeats."""
    value = _get(f, name)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise InvalidInput(f"invalid_{name}", f"{name} must be an id or a list of ids", field=name)
    out = [text({name: v}, name) for v in items]
    if len(set(out)) != len(out):
        raise InvalidInput(f"invalid_{name}", f"{name} lists an id twice", field=name)
    return out


# -- looking things up in the state ------------------------------------------------------
def new_subscription_id(state: MigrationState, f: Fields) -> str:
    """The command's `subscription_id`, refused if an original or a replacement has it."""
    subscription_id = text(f, "subscription_id")
    if subscription_id in state.originals or subscription_id in state.replacements:
        raise Conflict(
            "duplicate_subscription",
            f"subscription {subscription_id!r} is already recorded",
            subscription_id=subscription_id,
        )
    return subscription_id


def original(state: MigrationState, subscription_id: str) -> Original:
    try:
        return state.originals[subscription_id]
    except KeyError:
        raise NotFound(
            "unknown_subscription",
            f"no original subscription {subscription_id!r} in this migration",
            subscription_id=subscription_id,
        ) from None


def replacement(state: MigrationState, subscription_id: str) -> Replacement:
    try:
        return state.replacements[subscription_id]
    except KeyError:
        raise NotFound(
            "unknown_subscription",
            f"no provisioned subscription {subscription_id!r} in this migration",
            subscription_id=subscription_id,
        ) from None
