"""Who does a command, when it happened in the business, and which request it belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import uuid4

from domain.errors import InvalidInput
from domain.vocabulary import Role, parse

# Clocks of partner tools drift; a business time slightly ahead of ours is still accepted.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Context:
    """The metadata every event carries: principal, role, correlation id, business time.

    `occurred_at` is the business time; None means "when it is recorded". `partner_id` is
    the partner the principal acts for (None for operators and the tracker itself): a
    partner only ever sees its own migrations.
    """

    principal: str
    role: str
    correlation_id: str = field(default_factory=lambda: str(uuid4()))
    occurred_at: datetime | None = None
    partner_id: str | None = None

    def __post_init__(self) -> None:
        if not self.principal.strip():
            raise InvalidInput("invalid_principal", "principal must not be empty")
        object.__setattr__(self, "role", parse(Role, self.role, "role"))
        if self.occurred_at is not None and self.occurred_at.tzinfo is None:
            raise InvalidInput("invalid_occurred_at", "occurred_at must carry a time zone")

    def business_time(self, recorded_at: datetime) -> datetime:
        if self.occurred_at is None:
            return recorded_at
        if self.occurred_at > recorded_at + CLOCK_SKEW:
            raise InvalidInput(
                "occurred_in_future",
                "occurred_at lies in the future",
                occurred_at=self.occurred_at.isoformat(),
            )
        return self.occurred_at


SYSTEM = "csp-tracker"
