"""Given events / when command / then events or refusal, as Emmett's decider specifications.

    given(requested(), original()).when("invitation_accepted", accepted_by="ga").then(
        fact("invitation_accepted", accepted_by="ga")
    )

`given` folds its events with each event's `evolve` (the state is `.state`); `when` runs the
decider alone (`domain.decider.decide`) on that state, so deciding and evolving are tested
separately. `then` names every event decided, in order, and the fields that matter of each
(fields it does not name are not compared); `then_refused(code)` expects a refusal and nothing
recorded. Times are fixed: NOW is the recorded time of every command unless a spec says other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.commands import Command
from domain.context import Context
from domain.decider import EVENTS, START, Decision, decide
from domain.errors import DomainError
from domain.offers import offer_key, shipped
from domain.state import MigrationState

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
ID = UUID("00000000-0000-4000-8000-000000000001")
ADMIN = ("alice@fabrikam.example", "account_admin")
SALES = ("sam@fabrikam.example", "sales_agent")
BILLING = ("bill@fabrikam.example", "billing_agent")
CUSTOMER = ("ga@contoso.example", "customer")
OFFERS = shipped()


def days(n: float) -> datetime:
    """NOW plus `n` days (negative: in the past)."""
    return NOW + timedelta(days=n)


def day(n: int) -> date:
    return TODAY + timedelta(days=n)


@dataclass(frozen=True)
class Fact:
    """An event: its wire name, its fields, and its business time (None: not compared in
    `then`; NOW when given)."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None


def fact(type: str, at: datetime | None = None, **fields: Any) -> Fact:
    return Fact(type, fields, at)


def build(facts: tuple[Fact, ...]) -> list[Any]:
    """The stored events of `facts`, as the library would construct them."""
    built = []
    for version, f in enumerate(facts, start=1):
        cls = EVENTS[f.type]
        extra = {"originator_topic": "csp_tracker.migration:Migration"} if cls is START else {}
        at = f.at or NOW
        built.append(
            cls(
                originator_id=ID,
                originator_version=version,
                timestamp=at,
                principal=ADMIN[0],
                role=ADMIN[1],
                occurred_at=at,
                correlation_id="given",
                **extra,
                **f.fields,
            )
        )
    return built


@dataclass
class Given:
    facts: tuple[Fact, ...]

    @property
    def events(self) -> list[Any]:
        return build(self.facts)

    @property
    def state(self) -> MigrationState:
        state = MigrationState()
        for event in self.events:
            event.evolve(state)
        return state

    def when(
        self,
        type: str,
        *,
        by: tuple[str, str] = ADMIN,
        at: datetime | None = None,
        now: datetime = NOW,
        partner: str | None = None,
        **fields: Any,
    ) -> Outcome:
        ctx = Context(by[0], by[1], "corr-1", occurred_at=at, partner_id=partner)
        try:
            decided = decide(self.state, Command(type, fields), ctx, now, OFFERS)
        except DomainError as error:
            return Outcome(self, None, error)
        return Outcome(self, decided, None)


def given(*facts: Fact) -> Given:
    return Given(facts)


@dataclass
class Outcome:
    given: Given
    decided: list[Decision] | None
    error: DomainError | None

    def then(self, *expected: Fact) -> Outcome:
        if self.error is not None:
            pytest.fail(f"refused with {self.error.code}: {self.error.message}")
        assert self.decided is not None
        assert [d.type for d in self.decided] == [e.type for e in expected]
        for decision, e in zip(self.decided, expected, strict=True):
            got = {k: decision.fields.get(k, _ABSENT) for k in e.fields}
            assert got == e.fields, f"{e.type}: {got} != {e.fields}"
            if e.at is not None:
                assert decision.values["occurred_at"] == e.at, e.type
        return self

    def then_refused(self, code: str, **details: Any) -> DomainError:
        assert self.decided is None, f"recorded {[d.type for d in self.decided]}, not refused"
        assert self.error is not None
        assert self.error.code == code, f"{self.error.code}: {self.error.message}"
        for k, v in details.items():
            assert self.error.details.get(k) == v, (k, self.error.details)
        return self.error

    @property
    def state(self) -> MigrationState:
        """The given state evolved with the decided events (evolve after decide)."""
        assert self.decided is not None, self.error
        facts = [Fact(d.type, d.fields, d.values["occurred_at"]) for d in self.decided]
        return Given((*self.given.facts, *facts)).state


_ABSENT = object()


# -- the facts of an ordinary migration, in their stored form ---------------------------------
def requested(at: datetime | None = None, **overrides: Any) -> Fact:
    fields = {
        "partner_id": "fabrikam",
        "partner_region": "europe",
        "tenant_id": "contoso.onmicrosoft.com",
        "tenant_guid": None,
        "customer_name": "Contoso Ltd",
        "customer_region": "europe",
        "customer_country": None,
        "channel": "direct",
        "multi_partner": False,
    }
    return Fact("relationship_requested", {**fields, **overrides}, at or days(-60))


def original(
    sub: str = "orig-1",
    *,
    licenses: int = 25,
    offer: str = "O365_E3",
    term_end: date | None = None,
    via: str = "m365_admin_portal",
    auto_renew: bool = True,
    at: datetime | None = None,
) -> Fact:
    return Fact(
        "original_subscription_recorded",
        {
            "subscription_id": sub,
            "offer_id": offer,
            "offer_name": offer.replace("_", " "),
            "licenses": licenses,
            "term_end": term_end or day(60),
            "purchased_via": via,
            "billing_cycle": "annual",
            "auto_renew": auto_renew,
            "family": OFFERS.family(offer),
        },
        at or days(-59),
    )


def accepted(at: datetime | None = None, tenant_guid: str | None = None) -> Fact:
    return Fact(
        "invitation_accepted",
        {"accepted_by": "ga@contoso.example", "tenant_guid": tenant_guid},
        at or days(-50),
    )


def provisioned(
    sub: str = "csp-1",
    replaces: str | list[str] = "orig-1",
    *,
    licenses: int = 25,
    offer: str = "O365_E3",
    of: str = "O365_E3",
    at: datetime | None = None,
) -> Fact:
    """A replacement; `of` is the offer of the originals it replaces."""
    return Fact(
        "subscription_provisioned",
        {
            "subscription_id": sub,
            "replaces": [replaces] if isinstance(replaces, str) else replaces,
            "offer_id": offer,
            "offer_name": offer,
            "licenses": licenses,
            "family": OFFERS.family(of),
            "reassignment_required": offer_key(offer) != offer_key(of),
        },
        at or days(-40),
    )


def on(type: str, sub: str = "orig-1", at: datetime | None = None, **fields: Any) -> Fact:
    """An event about one subscription (auto-renew off, expiry, cancellation, ...)."""
    return Fact(type, {"subscription_id": sub, **fields}, at)


def gdap(
    relationship_id: str = "gdap-1", expires: datetime | None = None, at: datetime | None = None
) -> Fact:
    return Fact(
        "admin_access_granted",
        {"kind": "gdap", "expires_at": expires or days(300), "relationship_id": relationship_id},
        at or days(-45),
    )
