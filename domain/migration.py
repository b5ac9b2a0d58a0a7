"""The Migration aggregate: one customer tenant moving to one CSP partner.

Commands (methods) decide and refuse; events (nested classes) evolve the derived state.
Every event has an explicit TOPIC whose suffix is its wire name, so renaming or moving a class
never breaks stored events, and the API uses the same names.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from eventsourcing.domain import Aggregate, datetime_now_with_tzinfo

from domain import rules
from domain.context import SYSTEM, Context
from domain.errors import Conflict, InvalidInput, NotFound, RuleViolated
from domain.roles import ensure_permitted
from domain.state import AdminAccess, MigrationState, Original, Replacement
from domain.vocabulary import (
    AdminAccessKind,
    BillingCycle,
    Channel,
    CreditOutcome,
    OriginalStatus,
    Party,
    PurchasedVia,
    Role,
    Stage,
    parse,
)

_TOPIC = "csp_tracker.migration:"


def event_type(event: object) -> str:
    """The wire name of an event: the suffix of its stable topic."""
    return type(event).TOPIC.rpartition(":")[2]  # type: ignore[attr-defined]


class Migration(Aggregate):
    TOPIC = "csp_tracker.migration:Migration"

    def __init__(self) -> None:
        self.state = MigrationState()

    # -- events ----------------------------------------------------------------------
    class Event(Aggregate.Event):
        principal: str
        role: str
        occurred_at: datetime
        correlation_id: str

        def apply(self, aggregate: Migration) -> None:
            self.evolve(aggregate.state)

        def evolve(self, state: MigrationState) -> None:
            """Apply this event to derived state. Overridden per event."""

    class RelationshipRequested(Event, Aggregate.Created):
        TOPIC = _TOPIC + "relationship_requested"
        partner_id: str
        partner_region: str
        tenant_id: str
        customer_name: str
        customer_region: str
        channel: str
        multi_partner: bool

        def evolve(self, state: MigrationState) -> None:
            state.partner_id = self.partner_id
            state.partner_region = self.partner_region
            state.tenant_id = self.tenant_id
            state.customer_name = self.customer_name
            state.customer_region = self.customer_region
            state.channel = self.channel
            state.multi_partner = self.multi_partner
            state.requested_at = self.occurred_at

    Created = RelationshipRequested  # the library's name for the creation event

    class OriginalSubscriptionRecorded(Event):
        TOPIC = _TOPIC + "original_subscription_recorded"
        # Version 2 added auto_renew: originals renew unless the customer turned it off.
        class_version = 2
        subscription_id: str
        offer_id: str
        offer_name: str
        licenses: int
        term_end: date
        purchased_via: str
        billing_cycle: str
        auto_renew: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["auto_renew"] = True

        def evolve(self, state: MigrationState) -> None:
            state.originals[self.subscription_id] = Original(
                subscription_id=self.subscription_id,
                offer_id=self.offer_id,
                offer_name=self.offer_name,
                licenses=self.licenses,
                term_end=self.term_end,
                purchased_via=self.purchased_via,
                billing_cycle=self.billing_cycle,
                auto_renew=self.auto_renew,
            )

    class InvitationAccepted(Event):
        TOPIC = _TOPIC + "invitation_accepted"
        accepted_by: str

        def evolve(self, state: MigrationState) -> None:
            state.accepted_by = self.accepted_by
            state.accepted_at = self.occurred_at

    class AdminAccessGranted(Event):
        TOPIC = _TOPIC + "admin_access_granted"
        kind: str
        expires_at: datetime | None

        def evolve(self, state: MigrationState) -> None:
            state.admin_access = AdminAccess(self.kind, self.occurred_at, self.expires_at)

    class AdminAccessRemoved(Event):
        TOPIC = _TOPIC + "admin_access_removed"

        def evolve(self, state: MigrationState) -> None:
            state.admin_access = None

    class OriginalAutoRenewDisabled(Event):
        TOPIC = _TOPIC + "original_auto_renew_disabled"
        subscription_id: str

        def evolve(self, state: MigrationState) -> None:
            state.originals[self.subscription_id].auto_renew = False

    class OfferRetired(Event):
        TOPIC = _TOPIC + "offer_retired"
        subscription_id: str

        def evolve(self, state: MigrationState) -> None:
            state.originals[self.subscription_id].offer_retired = True

    class SubscriptionProvisioned(Event):
        TOPIC = _TOPIC + "subscription_provisioned"
        subscription_id: str
        replaces: str
        offer_id: str
        offer_name: str
        licenses: int

        def evolve(self, state: MigrationState) -> None:
            original = state.originals[self.replaces]
            original.replaced_by = self.subscription_id
            state.replacements[self.subscription_id] = Replacement(
                subscription_id=self.subscription_id,
                replaces=self.replaces,
                offer_id=self.offer_id,
                offer_name=self.offer_name,
                licenses=self.licenses,
                purchased_at=self.occurred_at,
                # Same offer: licenses carry over. Another offer: they must be reassigned.
                reassignment_pending=self.offer_id != original.offer_id,
            )

    class LicensesReassigned(Event):
        TOPIC = _TOPIC + "licenses_reassigned"
        subscription_id: str

        def evolve(self, state: MigrationState) -> None:
            state.replacements[self.subscription_id].reassignment_pending = False

    class LicensesChanged(Event):
        TOPIC = _TOPIC + "licenses_changed"
        subscription_id: str
        licenses: int

        def evolve(self, state: MigrationState) -> None:
            replacement = state.replacements[self.subscription_id]
            if self.licenses < replacement.licenses and rules.is_late_reduction(
                replacement.purchased_at, self.occurred_at
            ):
                replacement.late_reduction = True
            replacement.licenses = self.licenses

    class OriginalSubscriptionExpired(Event):
        TOPIC = _TOPIC + "original_subscription_expired"
        subscription_id: str

        def evolve(self, state: MigrationState) -> None:
            original = state.originals[self.subscription_id]
            original.status = OriginalStatus.EXPIRED.value
            original.ended_at = self.occurred_at

    class OriginalSubscriptionCancelled(Event):
        TOPIC = _TOPIC + "original_subscription_cancelled"
        subscription_id: str
        cancelled_by: str

        def evolve(self, state: MigrationState) -> None:
            original = state.originals[self.subscription_id]
            original.status = OriginalStatus.CANCELLED.value
            original.ended_at = self.occurred_at
            original.cancelled_by = self.cancelled_by
            original.cancelled_before_replacement = original.replaced_by is None
            original.early_cancellation = rules.is_early_cancellation(
                original.term_end, self.occurred_at
            )

    class CreditRequested(Event):
        TOPIC = _TOPIC + "credit_requested"
        subscription_id: str
        requested_by: str

        def evolve(self, state: MigrationState) -> None:
            original = state.originals[self.subscription_id]
            original.credit = "requested"
            original.credit_requested_by = self.requested_by

    class CreditResolved(Event):
        TOPIC = _TOPIC + "credit_resolved"
        subscription_id: str
        outcome: str
        amount: Decimal | None
        currency: str | None

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

    class MigrationAbandoned(Event):
        TOPIC = _TOPIC + "migration_abandoned"
        reason: str

        def evolve(self, state: MigrationState) -> None:
            state.closed = Stage.ABANDONED.value
            state.closed_at = self.occurred_at
            state.abandon_reason = self.reason

    class NoteAdded(Event):
        TOPIC = _TOPIC + "note_added"
        text: str

        def evolve(self, state: MigrationState) -> None:
            state.notes += 1

    class MigrationCompleted(Event):
        TOPIC = _TOPIC + "migration_completed"

        def evolve(self, state: MigrationState) -> None:
            state.closed = Stage.COMPLETED.value
            state.closed_at = self.occurred_at

    # -- commands ----------------------------------------------------------------------
    @classmethod
    def request_relationship(
        cls,
        ctx: Context,
        *,
        partner_id: str,
        partner_region: str,
        tenant_id: str,
        customer_name: str,
        customer_region: str,
        channel: str,
        multi_partner: bool,
    ) -> Migration:
        ensure_permitted("relationship_requested", ctx.role)
        tenant_id = _required(tenant_id, "tenant_id").lower()
        customer_name = _required(customer_name, "customer_name")
        customer_region = _required(customer_region, "customer_region").lower()
        channel = parse(Channel, channel, "channel")
        if partner_region.lower() != customer_region:
            raise RuleViolated(
                "region_mismatch",
                "the partner must be in the same region as the customer's tenant",
                partner_region=partner_region,
                customer_region=customer_region,
            )
        now = datetime_now_with_tzinfo()
        return cls._create(
            cls.RelationshipRequested,
            id=uuid4(),
            timestamp=now,
            **_metadata(ctx, now),
            partner_id=partner_id,
            partner_region=partner_region.lower(),
            tenant_id=tenant_id,
            customer_name=customer_name,
            customer_region=customer_region,
            channel=channel,
            multi_partner=bool(multi_partner),
        )

    def record_original(
        self,
        ctx: Context,
        *,
        subscription_id: str,
        offer_id: str,
        offer_name: str,
        licenses: int,
        term_end: date,
        purchased_via: str,
        billing_cycle: str,
        auto_renew: bool = True,
    ) -> None:
        self._ensure_open(ctx, "original_subscription_recorded")
        subscription_id = _required(subscription_id, "subscription_id")
        self._ensure_new_subscription_id(subscription_id)
        self._record(
            self.OriginalSubscriptionRecorded,
            ctx,
            subscription_id=subscription_id,
            offer_id=_required(offer_id, "offer_id"),
            offer_name=_required(offer_name, "offer_name"),
            licenses=_licenses(licenses),
            term_end=term_end,
            purchased_via=parse(PurchasedVia, purchased_via, "purchased_via"),
            billing_cycle=parse(BillingCycle, billing_cycle, "billing_cycle"),
            auto_renew=bool(auto_renew),
        )

    def accept_invitation(self, ctx: Context, *, accepted_by: str) -> None:
        self._ensure_open(ctx, "invitation_accepted")
        if self.state.accepted_at is not None:
            raise Conflict("already_accepted", "the invitation was already accepted")
        self._record(
            self.InvitationAccepted, ctx, accepted_by=_required(accepted_by, "accepted_by")
        )

    def grant_admin_access(
        self, ctx: Context, *, kind: str, expires_at: datetime | None = None
    ) -> None:
        self._ensure_open(ctx, "admin_access_granted")
        kind = parse(AdminAccessKind, kind, "kind")
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidInput("invalid_expires_at", "expires_at must carry a time zone")
        self._record(
            self.AdminAccessGranted,
            ctx,
            kind=kind,
            expires_at=expires_at,
            check=lambda at: _check_admin_expiry(kind, at, expires_at),
        )

    def remove_admin_access(self, ctx: Context) -> None:
        self._ensure_open(ctx, "admin_access_removed")
        if self.state.admin_access is None:
            raise Conflict("no_admin_access", "the partner holds no delegated admin access")
        self._record(self.AdminAccessRemoved, ctx)

    def disable_auto_renew(self, ctx: Context, *, subscription_id: str) -> None:
        self._ensure_open(ctx, "original_auto_renew_disabled")
        original = self._active_original(subscription_id)
        if not original.auto_renew:
            raise Conflict("auto_renew_already_off", "auto-renew is already off")
        self._record(self.OriginalAutoRenewDisabled, ctx, subscription_id=subscription_id)

    def retire_offer(self, ctx: Context, *, subscription_id: str) -> None:
        self._ensure_open(ctx, "offer_retired")
        original = self._original(subscription_id)
        if original.offer_retired:
            raise Conflict("offer_already_retired", "the offer is already marked retired")
        self._record(self.OfferRetired, ctx, subscription_id=subscription_id)

    def provision_subscription(
        self,
        ctx: Context,
        *,
        subscription_id: str,
        replaces: str,
        offer_id: str,
        offer_name: str,
        licenses: int,
    ) -> None:
        self._ensure_open(ctx, "subscription_provisioned")
        if self.state.accepted_at is None:
            raise RuleViolated(
                "not_accepted", "the customer has not accepted the reseller relationship yet"
            )
        original = self._original(replaces)
        if original.replaced_by is not None:
            raise Conflict(
                "already_replaced",
                f"{replaces} is already replaced by {original.replaced_by}",
                replaced_by=original.replaced_by,
            )
        subscription_id = _required(subscription_id, "subscription_id")
        self._ensure_new_subscription_id(subscription_id)
        offer_id = _required(offer_id, "offer_id")
        if original.offer_retired and offer_id == original.offer_id:
            raise RuleViolated(
                "offer_retired",
                f"offer {offer_id} is retired: provision an equivalent offer",
                offer_id=offer_id,
            )
        self._record(
            self.SubscriptionProvisioned,
            ctx,
            subscription_id=subscription_id,
            replaces=replaces,
            offer_id=offer_id,
            offer_name=_required(offer_name, "offer_name"),
            licenses=_licenses(licenses),
        )

    def reassign_licenses(self, ctx: Context, *, subscription_id: str) -> None:
        self._ensure_open(ctx, "licenses_reassigned")
        replacement = self._replacement(subscription_id)
        if not replacement.reassignment_pending:
            raise Conflict(
                "reassignment_not_pending",
                "this replacement keeps the original's offer, or was already reassigned",
            )
        self._record(self.LicensesReassigned, ctx, subscription_id=subscription_id)

    def change_licenses(self, ctx: Context, *, subscription_id: str, licenses: int) -> None:
        self._ensure_open(ctx, "licenses_changed")
        replacement = self._replacement(subscription_id)
        licenses = _licenses(licenses)
        if licenses == replacement.licenses:
            raise Conflict("licenses_unchanged", f"the count is already {licenses}")
        self._record(self.LicensesChanged, ctx, subscription_id=subscription_id, licenses=licenses)

    def record_expiry(self, ctx: Context, *, subscription_id: str) -> None:
        self._ensure_open(ctx, "original_subscription_expired")
        original = self._active_original(subscription_id)
        if original.auto_renew:
            raise RuleViolated(
                "auto_renew_on",
                "an original that still auto-renews does not expire: "
                "record original_auto_renew_disabled first",
            )
        self._record(self.OriginalSubscriptionExpired, ctx, subscription_id=subscription_id)

    def record_cancellation(self, ctx: Context, *, subscription_id: str, cancelled_by: str) -> None:
        self._ensure_open(ctx, "original_subscription_cancelled")
        self._active_original(subscription_id)
        self._record(
            self.OriginalSubscriptionCancelled,
            ctx,
            subscription_id=subscription_id,
            cancelled_by=parse(Party, cancelled_by, "cancelled_by"),
        )

    def request_credit(self, ctx: Context, *, subscription_id: str, requested_by: str) -> None:
        self._ensure_open(ctx, "credit_requested")
        original = self._original(subscription_id)
        requested_by = parse(Party, requested_by, "requested_by")
        if not rules.credit_eligible(original):
            raise RuleViolated(
                "credit_not_eligible",
                "only subscriptions bought through the M365 admin portal can get a credit",
                purchased_via=original.purchased_via,
            )
        if original.credit is not None:
            raise Conflict("credit_already_requested", "a credit was already requested")

        def check(at: datetime) -> None:
            if requested_by == Party.PARTNER and not self.state.has_admin_access(at):
                raise RuleViolated(
                    "delegated_admin_required",
                    "the partner may ask on the customer's behalf only with DAP or GDAP "
                    "access; otherwise the customer asks",
                )

        self._record(
            self.CreditRequested,
            ctx,
            subscription_id=subscription_id,
            requested_by=requested_by,
            check=check,
        )

    def resolve_credit(
        self,
        ctx: Context,
        *,
        subscription_id: str,
        outcome: str,
        amount: Decimal | None = None,
        currency: str | None = None,
    ) -> None:
        self._ensure_open(ctx, "credit_resolved")
        original = self._original(subscription_id)
        if original.credit != "requested":
            raise Conflict(
                "credit_not_requested" if original.credit is None else "credit_already_resolved",
                "only a requested, unresolved credit can be resolved",
            )
        outcome = parse(CreditOutcome, outcome, "outcome")
        if outcome == CreditOutcome.GRANTED:
            if amount is None or not amount.is_finite() or amount <= 0:
                raise InvalidInput("invalid_amount", "a granted credit needs a positive amount")
            currency = _required(currency or "", "currency").upper()
            if len(currency) != 3 or not currency.isalpha():
                raise InvalidInput("invalid_currency", "currency must be an ISO 4217 code")
        else:
            amount, currency = None, None
        self._record(
            self.CreditResolved,
            ctx,
            subscription_id=subscription_id,
            outcome=outcome,
            amount=amount,
            currency=currency,
        )

    def abandon(self, ctx: Context, *, reason: str) -> None:
        self._ensure_open(ctx, "migration_abandoned")
        self._record(self.MigrationAbandoned, ctx, reason=_required(reason, "reason"))

    def add_note(self, ctx: Context, *, text: str) -> None:
        self._ensure_open(ctx, "note_added")
        self._record(self.NoteAdded, ctx, text=_required(text, "text"))

    # -- helpers -------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self.state.closed is not None

    def ensure_visible_to(self, ctx: Context) -> None:
        """Another partner's migration does not exist for this actor (ids never leak)."""
        if ctx.partner_id is not None and ctx.partner_id != self.state.partner_id:
            raise NotFound("migration_not_found", f"no migration {self.id}")

    def _ensure_open(self, ctx: Context, event_name: str) -> None:
        self.ensure_visible_to(ctx)
        ensure_permitted(event_name, ctx.role)
        if self.state.closed and not (
            self.state.closed == Stage.COMPLETED and event_name in rules.AFTER_COMPLETION
        ):
            raise Conflict(
                "migration_closed", f"the migration is {self.state.closed}", stage=self.state.closed
            )

    def _record(self, event_class: type[Event], ctx: Context, check: Any = None, **fields: Any):
        now = datetime_now_with_tzinfo()
        metadata = _metadata(ctx, now)
        if check is not None:
            check(metadata["occurred_at"])
        self.trigger_event(event_class, timestamp=now, **metadata, **fields)
        if not self.state.closed and self.state.is_complete:
            # Step 4 of the seed: recorded by the aggregate itself, in the same save.
            system = Context(SYSTEM, Role.SYSTEM, ctx.correlation_id, metadata["occurred_at"])
            self.trigger_event(self.MigrationCompleted, timestamp=now, **_metadata(system, now))

    def _original(self, subscription_id: str) -> Original:
        try:
            return self.state.originals[subscription_id]
        except KeyError:
            raise NotFound(
                "unknown_subscription",
                f"no original subscription {subscription_id!r} in this migration",
                subscription_id=subscription_id,
            ) from None

    def _active_original(self, subscription_id: str) -> Original:
        original = self._original(subscription_id)
        if original.ended:
            raise Conflict(
                "subscription_ended",
                f"{subscription_id} already {original.status}",
                status=original.status,
            )
        return original

    def _replacement(self, subscription_id: str) -> Replacement:
        try:
            return self.state.replacements[subscription_id]
        except KeyError:
            raise NotFound(
                "unknown_subscription",
                f"no provisioned subscription {subscription_id!r} in this migration",
                subscription_id=subscription_id,
            ) from None

    def _ensure_new_subscription_id(self, subscription_id: str) -> None:
        if subscription_id in self.state.originals or subscription_id in self.state.replacements:
            raise Conflict(
                "duplicate_subscription",
                f"subscription {subscription_id!r} is already recorded",
                subscription_id=subscription_id,
            )


def _metadata(ctx: Context, recorded_at: datetime) -> dict[str, Any]:
    return {
        "principal": ctx.principal,
        "role": ctx.role,
        "occurred_at": ctx.business_time(recorded_at),
        "correlation_id": ctx.correlation_id,
    }


def _required(value: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"invalid_{field}", f"{field} must not be empty", field=field)
    return value.strip()


def _licenses(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput("invalid_licenses", "licenses must be a whole number of at least 1")
    return value


def _check_admin_expiry(kind: str, granted_at: datetime, expires_at: datetime | None) -> None:
    if kind == AdminAccessKind.GDAP:
        if expires_at is None:
            raise InvalidInput("invalid_expires_at", "GDAP access needs expires_at")
        if expires_at - granted_at > rules.GDAP_MAX_DURATION:
            raise InvalidInput("invalid_expires_at", "GDAP relationships last at most 730 days")
    if expires_at is not None and expires_at <= granted_at:
        raise InvalidInput("invalid_expires_at", "expires_at must be after the grant")
