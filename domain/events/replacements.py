"""Step 2 of the seed, second half: the partner provisions the replacements in CSP, with the
same license totals per offer; licenses are reassigned where the offer differs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain import fields as f
from domain import roles
from domain.errors import Conflict, InvalidInput, NotFound, RuleViolated
from domain.migration import TOPIC_PREFIX, Migration
from domain.offers import Catalogue, offer_key
from domain.rules import REDUCTION_WINDOW
from domain.state import MigrationState, Replacement


class SubscriptionProvisioned(Migration.Event):
    """A CSP subscription replacing one or more originals of one offer family."""

    TOPIC = TOPIC_PREFIX + "subscription_provisioned"
    ROLES = roles.SALES
    STEP = 2
    # Version 2: `replaces` is a list; the family and the need to reassign licenses are decided
    # (from the offer catalogue) when provisioned.
    class_version = 2
    subscription_id: str
    replaces: list[str]
    offer_id: str
    offer_name: str
    licenses: int
    family: str | None
    reassignment_required: bool | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["replaces"] = [state["replaces"]]
        # Decided from the originals when evolved (see `evolve`): version 1 stored neither.
        state["family"] = None
        state["reassignment_required"] = None

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        if state.accepted_at is None or state.accepted_at > at:
            raise RuleViolated(
                "not_accepted",
                "the customer had not accepted the reseller relationship by then",
                accepted_at=None if state.accepted_at is None else state.accepted_at.isoformat(),
            )
        subscription_id = f.new_subscription_id(state, c)
        replaced = [f.original(state, s) for s in f.subscription_ids(c, "replaces")]
        offer_id = f.text(c, "offer_id")
        for o in replaced:
            if o.excluded is not None:
                raise Conflict(
                    "original_excluded", f"{o.subscription_id} is out of this migration's scope"
                )
            if o.offer_retired and offers.same_offer(o.offer_id, offer_id):
                raise RuleViolated(
                    "offer_retired",
                    f"offer {o.offer_id} is retired: provision an equivalent offer",
                    offer_id=o.offer_id,
                )
            if (
                o.offer_retired
                and offers.knows(o.offer_id)
                and not offers.equivalent(o.offer_id, offer_id)
            ):
                raise RuleViolated(
                    "offer_not_equivalent",
                    f"{offer_id} is not equivalent to the retired offer {o.offer_id}",
                    offer_id=offer_id,
                )
        families = sorted({o.family for o in replaced})
        if len(families) > 1:
            raise RuleViolated(
                "mixed_offer_families",
                "one replacement can only replace originals of one offer; provision one "
                "subscription per offer",
                families=families,
            )
        return {
            "subscription_id": subscription_id,
            "replaces": [o.subscription_id for o in replaced],
            "offer_id": offer_id,
            "offer_name": f.text(c, "offer_name"),
            "licenses": f.licenses(c),
            "family": families[0],
            # Same offer: licenses carry over. Another offer: users must be moved onto it.
            "reassignment_required": any(
                not offers.same_offer(o.offer_id, offer_id) for o in replaced
            ),
        }

    def evolve(self, state: MigrationState) -> None:
        originals = [state.originals[s] for s in self.replaces]
        family = self.family if self.family is not None else originals[0].family
        required = self.reassignment_required
        if required is None:
            required = any(offer_key(o.offer_id) != offer_key(self.offer_id) for o in originals)
        for o in originals:
            o.replaced_by = (*o.replaced_by, self.subscription_id)
        state.replacements[self.subscription_id] = Replacement(
            subscription_id=self.subscription_id,
            replaces=tuple(self.replaces),
            offer_id=self.offer_id,
            offer_name=self.offer_name,
            licenses=self.licenses,
            purchased_at=self.occurred_at,
            family=family,
            reassignment_pending=required,
            seat_lots=((self.occurred_at, self.licenses),),
        )
        state.progressed(self.occurred_at)


class LicensesReassigned(Migration.Event):
    TOPIC = TOPIC_PREFIX + "licenses_reassigned"
    ROLES = roles.CUSTOMER_OBSERVED
    STEP = 2
    subscription_id: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        replacement = f.replacement(state, f.text(c, "subscription_id"))
        if not replacement.reassignment_pending:
            raise Conflict(
                "reassignment_not_pending",
                "this replacement keeps the original's offer, or was already reassigned",
            )
        return {"subscription_id": replacement.subscription_id}

    def evolve(self, state: MigrationState) -> None:
        state.replacements[self.subscription_id].reassignment_pending = False
        state.progressed(self.occurred_at)


def reducible(replacement: Replacement, at: datetime) -> int:
    """Seats of `replacement` added within the reduction window before `at`."""
    return sum(n for added, n in replacement.seat_lots if added <= at < added + REDUCTION_WINDOW)


class LicensesChanged(Migration.Event):
    """A replacement's seat count changed. Seats can be removed only within 7 days of being
    added (purchase or the latest increase); Partner Center refuses later reductions."""

    TOPIC = TOPIC_PREFIX + "licenses_changed"
    ROLES = roles.PARTNER
    STEP = 2
    subscription_id: str
    licenses: int

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        replacement = f.replacement(state, f.text(c, "subscription_id"))
        licenses = f.licenses(c)
        if licenses == replacement.licenses:
            raise Conflict("licenses_unchanged", f"the count is already {licenses}")
        removed = replacement.licenses - licenses
        if removed > 0 and removed > reducible(replacement, at):
            raise RuleViolated(
                "reduction_window_closed",
                "new-commerce seats can be reduced only within 7 days of being added: "
                f"{reducible(replacement, at)} of these seats can still be removed",
                reducible=reducible(replacement, at),
            )
        return {"subscription_id": replacement.subscription_id, "licenses": licenses}

    def evolve(self, state: MigrationState) -> None:
        r = state.replacements[self.subscription_id]
        change = self.licenses - r.licenses
        if change > 0:
            # Kept in business-time order, whatever order increases were recorded in.
            r.seat_lots = tuple(sorted((*r.seat_lots, (self.occurred_at, change))))
        else:
            # Seats come off the newest lots first (stores from before the rule may hold late
            # reductions: the lots then simply run out).
            lots, remove = list(r.seat_lots), -change
            while remove and lots:
                added, n = lots.pop()
                if n > remove:
                    lots.append((added, n - remove))
                remove = max(remove - n, 0)
            r.seat_lots = tuple(lots)
        r.licenses = self.licenses
        state.progressed(self.occurred_at)


class LicenseReductionAccepted(Migration.Event):
    """The account admin accepts fewer licenses for an offer than the originals held: the
    shortfall down to `licenses` is deliberate, not a risk."""

    TOPIC = TOPIC_PREFIX + "license_reduction_accepted"
    ROLES = roles.ADMIN_ONLY
    STEP = 2
    offer_id: str
    family: str
    licenses: int
    reason: str

    @classmethod
    def decide(
        cls, state: MigrationState, c: Mapping[str, Any], at: datetime, offers: Catalogue
    ) -> dict[str, Any]:
        offer_id = f.text(c, "offer_id")
        family = next(
            (
                o.family
                for o in state.in_scope
                if o.family == offers.family(offer_id) or offers.same_offer(o.offer_id, offer_id)
            ),
            None,
        )
        if family is None:
            raise NotFound(
                "unknown_offer", f"no original in scope has offer {offer_id}", offer_id=offer_id
            )
        licenses = f.licenses(c)
        total = state.totals()[family][0]
        if licenses >= total:
            raise InvalidInput(
                "invalid_licenses",
                f"a reduction must be below the originals' total of {total}",
                total=total,
            )
        return {
            "offer_id": offer_id,
            "family": family,
            "licenses": licenses,
            "reason": f.text(c, "reason"),
        }

    def evolve(self, state: MigrationState) -> None:
        state.accepted_totals[self.family] = self.licenses
        state.progressed(self.occurred_at)
