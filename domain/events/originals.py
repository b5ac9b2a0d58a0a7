"""The customer's original subscriptions (outside CSP): recorded, corrected, renewed, taken out
of scope, and ended by expiry or cancellation (step 3 of the seed)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from domain import fields as f
from domain import roles
from domain.errors import Conflict, InvalidInput, RuleViolated
from domain.migration import TOPIC_PREFIX, Migration
from domain.offers import Catalogue, offer_key
from domain.state import MigrationState, Original
from domain.vocabulary import (
    BillingCycle,
    ExclusionReason,
    OriginalStatus,
    Party,
    PurchasedVia,
)


def _active(state: MigrationState, c: Mapping[str, Any]) -> Original:
    original = f.original(state, f.text(c, "subscription_id"))
    if original.ended:
        raise Conflict(
            "subscription_ended",
            f"{original.subscription_id} already {original.status}",
            status=original.status,
        )
    return original


def _not_before_term_end(original: Original, at: datetime) -> None:
    if at.date() < original.term_end:
        raise RuleViolated(
            "before_term_end",
            f"{original.subscription_id} runs until {original.term_end.isoformat()}: "
            "an original that ends earlier is cancelled, not expired or renewed",
            term_end=original.term_end.isoformat(),
        )


class OriginalSubscriptionRecorded(Migration.Event):
    BEFORE_REQUEST = True
    TOPIC = TOPIC_PREFIX + "original_subscription_recorded"
    ROLES = roles.SALES
    STEP = 1
    # Version 2 added auto_renew (originals renew unless the customer turned it off);
    # version 3 the offer family it is compared in, decided from the offer catalogue.
    class_version = 3
    subscription_id: str
    offer_id: str
    offer_name: str
    licenses: int
    term_end: date
    purchased_via: str
    billing_cycle: str
    auto_renew: bool
    family: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["auto_renew"] = True

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["family"] = offer_key(state["offer_id"])

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        subscription_id = f.new_subscription_id(state, c)
        offer_id = f.text(c, "offer_id")
        return {
            "subscription_id": subscription_id,
            "offer_id": offer_id,
            "offer_name": f.text(c, "offer_name"),
            "licenses": f.licenses(c),
            "term_end": f.day(c, "term_end"),
            "purchased_via": f.choice(c, "purchased_via", PurchasedVia),
            "billing_cycle": f.choice(c, "billing_cycle", BillingCycle),
            "auto_renew": f.flag(c, "auto_renew", True),
            "family": offers.family(offer_id),
        }

    def evolve(self, state: MigrationState) -> None:
        state.originals[self.subscription_id] = Original(
            subscription_id=self.subscription_id,
            offer_id=self.offer_id,
            offer_name=self.offer_name,
            licenses=self.licenses,
            term_end=self.term_end,
            purchased_via=self.purchased_via,
            billing_cycle=self.billing_cycle,
            family=self.family,
            auto_renew=self.auto_renew,
        )
        state.progressed(self.occurred_at)


class OriginalCorrected(Migration.Event):
    """What was recorded of an original was wrong: a new fact, never an edit of history."""

    BEFORE_REQUEST = True

    TOPIC = TOPIC_PREFIX + "original_corrected"
    ROLES = roles.ADMIN_ONLY
    STEP = 1
    subscription_id: str
    reason: str
    licenses: int | None
    term_end: date | None
    offer_id: str | None
    offer_name: str | None
    family: str | None

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = f.original(state, f.text(c, "subscription_id"))
        values: dict[str, Any] = {
            "licenses": None if c.get("licenses") is None else f.licenses(c),
            "term_end": None if c.get("term_end") is None else f.day(c, "term_end"),
            "offer_id": f.optional_text(c, "offer_id"),
            "offer_name": f.optional_text(c, "offer_name"),
        }
        changes = {k: v for k, v in values.items() if v is not None and v != getattr(original, k)}
        if not changes:
            raise InvalidInput(
                "nothing_to_correct",
                "name at least one of licenses, term_end, offer_id, offer_name with a new value",
            )
        offer_id = values["offer_id"]
        if offer_id is not None and original.replaced_by:
            raise Conflict(
                "already_replaced",
                f"{original.subscription_id} is already replaced: correct its offer before "
                "provisioning, or exclude it (recorded_in_error) and record it again",
            )
        return {
            "subscription_id": original.subscription_id,
            "reason": f.text(c, "reason"),
            **values,
            "family": None if offer_id is None else offers.family(offer_id),
        }

    def evolve(self, state: MigrationState) -> None:
        o = state.originals[self.subscription_id]
        for name in ("licenses", "term_end", "offer_id", "offer_name", "family"):
            value = getattr(self, name)
            if value is not None:
                setattr(o, name, value)
        state.progressed(self.occurred_at)


class OriginalExcluded(Migration.Event):
    """An original taken out of the migration's scope (e.g. kept with the other partner of a
    multi-partner customer): it neither blocks completion nor raises flags."""

    TOPIC = TOPIC_PREFIX + "original_excluded"
    ROLES = roles.SALES
    STEP = 1
    subscription_id: str
    reason: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = f.original(state, f.text(c, "subscription_id"))
        reason = f.choice(c, "reason", ExclusionReason)
        if original.excluded is not None:
            raise Conflict("already_excluded", f"{original.subscription_id} is already excluded")
        if original.replaced_by:
            raise Conflict(
                "already_replaced",
                f"{original.subscription_id} is replaced by {', '.join(original.replaced_by)}",
            )
        if original.ended and reason != ExclusionReason.RECORDED_IN_ERROR:
            # Its end happened in this migration: keep the flags it raised visible.
            raise Conflict(
                "subscription_ended",
                f"{original.subscription_id} already {original.status}: only an original "
                "recorded in error may be excluded after it ended",
                status=original.status,
            )
        if reason == ExclusionReason.KEPT_WITH_OTHER_PARTNER and not state.multi_partner:
            raise RuleViolated(
                "not_multi_partner",
                "only a migration requested as multi-partner keeps originals with another partner",
            )
        return {"subscription_id": original.subscription_id, "reason": reason}

    def evolve(self, state: MigrationState) -> None:
        state.originals[self.subscription_id].excluded = self.reason
        state.progressed(self.occurred_at)


class OriginalAutoRenewDisabled(Migration.Event):
    MAY_COMPLETE = False
    TOPIC = TOPIC_PREFIX + "original_auto_renew_disabled"
    ROLES = roles.CUSTOMER_OBSERVED
    STEP = 3
    subscription_id: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = _active(state, c)
        if not original.auto_renew:
            raise Conflict("auto_renew_already_off", "auto-renew is already off")
        return {"subscription_id": original.subscription_id}

    def evolve(self, state: MigrationState) -> None:
        state.originals[self.subscription_id].auto_renew = False


class OriginalSubscriptionRenewed(Migration.Event):
    """The original renewed at its term end (auto-renew was on): its term rolls forward."""

    MAY_COMPLETE = False

    TOPIC = TOPIC_PREFIX + "original_subscription_renewed"
    ROLES = roles.CUSTOMER_OBSERVED | roles.SYSTEM_ONLY
    STEP = 3
    subscription_id: str
    term_end: date

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = _active(state, c)
        term_end = f.day(c, "term_end")
        if not original.auto_renew:
            raise RuleViolated("auto_renew_off", f"auto-renew of {original.subscription_id} is off")
        _not_before_term_end(original, at)
        if term_end <= original.term_end:
            raise InvalidInput(
                "invalid_term_end", "the renewed term must end after the current one"
            )
        return {"subscription_id": original.subscription_id, "term_end": term_end}

    def evolve(self, state: MigrationState) -> None:
        state.originals[self.subscription_id].term_end = self.term_end


class OfferRetired(Migration.Event):
    MAY_COMPLETE = False
    TOPIC = TOPIC_PREFIX + "offer_retired"
    ROLES = roles.PARTNER
    STEP = 2
    subscription_id: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = f.original(state, f.text(c, "subscription_id"))
        if original.offer_retired:
            raise Conflict("offer_already_retired", "the offer is already marked retired")
        return {"subscription_id": original.subscription_id}

    def evolve(self, state: MigrationState) -> None:
        state.originals[self.subscription_id].offer_retired = True


class OriginalSubscriptionExpired(Migration.Event):
    """The original reached its term end with auto-renew off. Users keep access 30 days."""

    TOPIC = TOPIC_PREFIX + "original_subscription_expired"
    ROLES = roles.CUSTOMER_OBSERVED | roles.SYSTEM_ONLY
    STEP = 3
    subscription_id: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = _active(state, c)
        if original.auto_renew:
            raise RuleViolated(
                "auto_renew_on",
                "an original that still auto-renews does not expire: "
                "record original_auto_renew_disabled first",
            )
        _not_before_term_end(original, at)
        return {"subscription_id": original.subscription_id}

    def evolve(self, state: MigrationState) -> None:
        original = state.originals[self.subscription_id]
        original.status = OriginalStatus.EXPIRED.value
        original.ended_at = self.occurred_at
        state.progressed(self.occurred_at)


class OriginalSubscriptionCancelled(Migration.Event):
    """The original was cancelled: access ends at once, and there are no refunds."""

    TOPIC = TOPIC_PREFIX + "original_subscription_cancelled"
    ROLES = roles.CUSTOMER_OBSERVED
    STEP = 3
    subscription_id: str
    cancelled_by: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        original = _active(state, c)
        return {
            "subscription_id": original.subscription_id,
            "cancelled_by": f.choice(c, "cancelled_by", Party),
        }

    def evolve(self, state: MigrationState) -> None:
        original = state.originals[self.subscription_id]
        original.status = OriginalStatus.CANCELLED.value
        original.ended_at = self.occurred_at
        original.cancelled_by = self.cancelled_by
        state.progressed(self.occurred_at)
