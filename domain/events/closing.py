"""Credits for cancelled originals, notes, and the end of a migration (completed or abandoned)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain import fields as f
from domain import roles
from domain.errors import Conflict, InvalidInput, RuleViolated
from domain.migration import TOPIC_PREFIX, Migration
from domain.offers import Catalogue
from domain.state import MigrationState
from domain.vocabulary import CreditOutcome, Party, PurchasedVia, Role, Stage


class CreditRequested(Migration.Event):
    """A credit asked of M365 billing support (only for originals bought in the M365 admin
    portal). The partner may ask on the customer's behalf only with live DAP or GDAP."""

    MAY_COMPLETE = False

    TOPIC = TOPIC_PREFIX + "credit_requested"
    ROLES = roles.BILLING | {Role.CUSTOMER}
    STEP = 3
    AFTER_COMPLETION = True
    subscription_id: str
    requested_by: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = f.original(state, f.text(c, "subscription_id"))
        requested_by = f.choice(c, "requested_by", Party)
        if original.purchased_via != PurchasedVia.M365_ADMIN_PORTAL:
            raise RuleViolated(
                "credit_not_eligible",
                "only subscriptions bought through the M365 admin portal can get a credit",
                purchased_via=original.purchased_via,
            )
        if original.credit is not None:
            raise Conflict("credit_already_requested", "a credit was already requested")
        if requested_by == Party.PARTNER and not state.has_admin_access(at):
            raise RuleViolated(
                "delegated_admin_required",
                "the partner may ask on the customer's behalf only with DAP or GDAP access; "
                "otherwise the customer asks",
            )
        return {"subscription_id": original.subscription_id, "requested_by": requested_by}

    def evolve(self, state: MigrationState) -> None:
        original = state.originals[self.subscription_id]
        original.credit = "requested"
        original.credit_requested_by = self.requested_by
        original.credit_requested_at = self.occurred_at


class CreditResolved(Migration.Event):
    MAY_COMPLETE = False
    TOPIC = TOPIC_PREFIX + "credit_resolved"
    ROLES = roles.BILLING
    STEP = 3
    AFTER_COMPLETION = True
    subscription_id: str
    outcome: str
    amount: Decimal | None
    currency: str | None

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = f.original(state, f.text(c, "subscription_id"))
        if original.credit != "requested":
            raise Conflict(
                "credit_not_requested" if original.credit is None else "credit_already_resolved",
                "only a requested, unresolved credit can be resolved",
            )
        outcome = f.choice(c, "outcome", CreditOutcome)
        amount, currency = f.amount(c, "amount"), None
        if outcome == CreditOutcome.GRANTED:
            if amount is None or amount <= 0:
                raise InvalidInput("invalid_amount", "a granted credit needs a positive amount")
            currency = f.text(c, "currency").upper()
            if len(currency) != 3 or not currency.isalpha():
                raise InvalidInput("invalid_currency", "currency must be an ISO 4217 code")
        else:
            amount = None
        return {
            "subscription_id": original.subscription_id,
            "outcome": outcome,
            "amount": amount,
            "currency": currency,
        }

    def evolve(self, state: MigrationState) -> None:
        original = state.originals[self.subscription_id]
        original.credit = self.outcome
        original.credit_amount = self.amount
        original.credit_currency = self.currency
        if self.outcome == CreditOutcome.GRANTED and self.amount is not None:
            currency = self.currency or ""
            state.credits_granted[currency] = (
                state.credits_granted.get(currency, Decimal(0)) + self.amount
            )


class NoteAdded(Migration.Event):
    MAY_COMPLETE = False
    TOPIC = TOPIC_PREFIX + "note_added"
    ROLES = roles.PARTNER
    AFTER_COMPLETION = True
    text: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        return {"text": f.text(c, "text")}

    def evolve(self, state: MigrationState) -> None:
        state.notes += 1


class MigrationAbandoned(Migration.Event):
    MAY_COMPLETE = False
    TOPIC = TOPIC_PREFIX + "migration_abandoned"
    ROLES = roles.PARTNER
    STEP = 4
    reason: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        return {"reason": f.text(c, "reason")}

    def evolve(self, state: MigrationState) -> None:
        state.closed = Stage.ABANDONED.value
        state.closed_at = self.occurred_at
        state.abandon_reason = self.reason


class MigrationCompleted(Migration.Event):
    """Step 4 of the seed, recorded by the tracker itself in the same save as the fact that
    completed the migration, and dated at that fact's business time."""

    TOPIC = TOPIC_PREFIX + "migration_completed"
    ROLES = roles.SYSTEM_ONLY
    STEP = 4

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        return {}

    def evolve(self, state: MigrationState) -> None:
        state.closed = Stage.COMPLETED.value
        state.closed_at = self.occurred_at
