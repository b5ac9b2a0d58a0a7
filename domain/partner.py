"""Partners and tenant claims: small aggregates keyed by natural ids (uuid5)."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import Conflict, InvalidInput
from domain.regions import place

_NS = uuid5(NAMESPACE_URL, "urn:csp-tracker")


class Partner(Aggregate):
    """A CSP partner, registered with the region its Partner Center account is in."""

    TOPIC = "csp_tracker.partner:Partner"

    class Event(Aggregate.Event):
        pass

    class Registered(Event, Aggregate.Created):
        TOPIC = "csp_tracker.partner:registered"
        partner_id: str
        name: str
        region: str

    Created = Registered

    class RegionCorrected(Event):
        """Partners registered before regions were validated may hold a region that is not a
        CSP region (e.g. "emea"): they cannot request migrations until it is corrected."""

        TOPIC = "csp_tracker.partner:region_corrected"
        region: str

        def apply(self, aggregate: Partner) -> None:
            aggregate.region = self.region

    class CertificatePinned(Event):
        """The certificate Partner Center signs this partner's webhook notifications with."""

        TOPIC = "csp_tracker.partner:certificate_pinned"
        pem: str
        sha256: str

        def apply(self, aggregate: Partner) -> None:
            aggregate.certificate_pem = self.pem
            aggregate.certificate_sha256 = self.sha256

    class WebhookSecretSet(Event):
        """The SHA-256 of the secret in this partner's webhook URL (the secret is never
        stored): a notification signed for one partner cannot be replayed to another."""

        TOPIC = "csp_tracker.partner:webhook_secret_set"
        sha256: str

        def apply(self, aggregate: Partner) -> None:
            aggregate.webhook_secret_sha256 = self.sha256

    def __init__(self, partner_id: str, name: str, region: str) -> None:
        self.partner_id = partner_id
        self.name = name
        self.region = region
        self.certificate_pem: str | None = None
        self.certificate_sha256: str | None = None
        self.webhook_secret_sha256: str | None = None

    def set_webhook_secret(self, sha256: str) -> None:
        self.trigger_event(self.WebhookSecretSet, sha256=sha256)

    def pin_certificate(self, pem: str, sha256: str) -> None:
        if sha256 == self.certificate_sha256:
            raise Conflict("certificate_unchanged", "this certificate is already pinned")
        self.trigger_event(self.CertificatePinned, pem=pem, sha256=sha256)

    @staticmethod
    def key(partner_id: str) -> UUID:
        return uuid5(_NS, f"partner:{partner_id}")

    def correct_region(self, region: str) -> None:
        new = place(region).region
        if new == self.region:
            raise Conflict("region_unchanged", f"partner {self.partner_id} is already in {new}")
        self.trigger_event(self.RegionCorrected, region=new)

    @classmethod
    def register(cls, partner_id: str, name: str, region: str) -> Partner:
        for field, value in (("partner_id", partner_id), ("name", name)):
            if not value or not value.strip():
                raise InvalidInput(f"invalid_{field}", f"{field} must not be empty")
        return cls._create(
            cls.Registered,
            id=cls.key(partner_id),
            partner_id=partner_id.strip(),
            name=name.strip(),
            region=place(region).region,
        )


class TenantClaim(Aggregate):
    """At most one open migration per (partner, tenant).

    Saved in the same transaction as the migration it names, so two concurrent requests for
    the same pair collide on this aggregate's version in the store itself.
    """

    TOPIC = "csp_tracker.claim:TenantClaim"

    class Event(Aggregate.Event):
        pass

    class Opened(Event, Aggregate.Created):
        TOPIC = "csp_tracker.claim:opened"
        migration_id: UUID

    Created = Opened

    class Taken(Event):
        TOPIC = "csp_tracker.claim:taken"
        migration_id: UUID

        def apply(self, aggregate: TenantClaim) -> None:
            aggregate.migration_id = self.migration_id

    class Released(Event):
        TOPIC = "csp_tracker.claim:released"
        migration_id: UUID

        def apply(self, aggregate: TenantClaim) -> None:
            aggregate.migration_id = None

    def __init__(self, migration_id: UUID) -> None:
        self.migration_id: UUID | None = migration_id

    @staticmethod
    def key(partner_id: str, tenant_id: str) -> UUID:
        return uuid5(_NS, f"claim:{partner_id}:{tenant_id.strip().lower()}")

    @classmethod
    def open(cls, partner_id: str, tenant_id: str, migration_id: UUID) -> TenantClaim:
        return cls._create(cls.Opened, id=cls.key(partner_id, tenant_id), migration_id=migration_id)

    def take(self, migration_id: UUID) -> None:
        if self.migration_id is not None:
            raise Conflict(
                "migration_open",
                "an open migration already exists for this partner and tenant",
                migration_id=str(self.migration_id),
            )
        self.trigger_event(self.Taken, migration_id=migration_id)

    def release(self, migration_id: UUID) -> None:
        if self.migration_id == migration_id:
            self.trigger_event(self.Released, migration_id=migration_id)
