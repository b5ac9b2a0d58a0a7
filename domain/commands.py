"""Commands: what a caller asks the tracker to record, and the clock it is decided at.

A command names the event it asks for by its wire name, with the event's fields. There is one
command path (`Tracker.start` / `Tracker.execute` -> `decider.decide`), so a new event costs one
event class (its fields, the roles that may record it, `decide` and `evolve`) and one spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Command:
    """Record the event `type` (its wire name) with these `fields`."""

    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, type: str, **fields: Any) -> Command:
        return cls(type, fields)
