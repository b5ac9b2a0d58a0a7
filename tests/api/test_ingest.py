"""Partner Center webhook notifications, signed with a throwaway key and a self-signed
certificate, through the API on both stores."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from api.webhook import read_certificate
from tests.api.conftest import ORIGINAL, PARTNER_A

GUID = "8a1c2f3e-4b5d-4e6f-9a0b-1c2d3e4f5a6b"
SECRET = "s3cret-of-fabrikam"
URL = f"/v1/ingest/partner-center/{PARTNER_A}?secret={SECRET}"


def certificate(name: str = "partner-center") -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


KEY, CERT = certificate()


def notification(event: str, uri: str, changed: datetime | None = None) -> bytes:
    body = {
        "EventName": event,
        "ResourceUri": uri,
        "ResourceName": "customer",
        "AuditUri": "https://api.partnercenter.microsoft.com/v1/auditrecords/x",
        "ResourceChangeUtcDate": (changed or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
    }
    return json.dumps(body).encode()


def signed(body: bytes, key: rsa.RSAPrivateKey = KEY) -> dict[str, str]:
    signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Authorization": "Signature " + base64.b64encode(signature).decode(),
        "X-MS-Signature-Algorithm": "rsa-sha256",
        "X-MS-Certificate-Url": "https://api.partnercenter.microsoft.com/v1/webhooks/cert",
        "Content-Type": "application/json",
    }


def customer(guid: str = GUID, tail: str = "") -> str:
    return f"https://api.partnercenter.microsoft.com/v1/customers/{guid}{tail}"


def sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def pc(api):
    pem, sha256 = read_certificate(CERT)
    api.tracker.pin_certificate(PARTNER_A, pem, sha256, sha(SECRET))
    return api


def post(api, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return api.client.post(URL, content=body, headers=signed(body) if headers is None else headers)


def stored(api) -> int:
    return api.tracker.recorder.max_notification_id() or 0


def events_of(api, migration_id: str) -> list[Any]:
    from uuid import UUID

    return api.tracker.history(UUID(migration_id))


class TestMapping:
    def test_acceptance_by_the_customer_is_recorded_by_the_system(self, pc):
        migration_id = pc.new_migration(tenant_guid=GUID)["id"]
        response = post(pc, notification("reseller-relationship-accepted-by-customer", customer()))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "applied"
        assert body["migration_id"] == migration_id
        accepted = events_of(pc, migration_id)[-1]
        assert type(accepted).__name__ == "InvitationAccepted"
        assert (accepted.principal, accepted.role) == ("partner-center", "system")
        assert body["migration_version"] == accepted.originator_version

    def test_gdap_approval_and_termination_name_the_relationship(self, pc):
        migration_id = pc.new_migration(tenant_guid=GUID)["id"]
        uri = customer(tail="/adminrelationships/rel-42")
        approved = post(pc, notification("granular-admin-relationship-approved", uri))
        assert approved.json()["status"] == "applied"
        state = pc.get("admin_a", f"/v1/migrations/{migration_id}").json()
        assert [r["relationship_id"] for r in state["admin_access"]] == ["rel-42"]
        ended = post(pc, notification("granular-admin-relationship-terminated", uri))
        assert ended.json()["status"] == "applied"
        state = pc.get("admin_a", f"/v1/migrations/{migration_id}").json()
        assert state["admin_access"] == []

    def test_a_refused_event_is_logged_with_its_code(self, pc):
        pc.new_migration(tenant_guid=GUID)
        response = post(pc, notification("dap-admin-relationship-approved", customer()))
        assert response.status_code == 200
        assert response.json()["status"] == "rejected"
        assert response.json()["refusal"] == "dap_not_available"

    @pytest.mark.parametrize("event", ["subscription-updated", "subscription-renewed", "x-new"])
    def test_other_notifications_need_reconciliation(self, pc, event):
        migration_id = pc.new_migration(tenant_guid=GUID)["id"]
        before = len(events_of(pc, migration_id))
        response = post(pc, notification(event, customer(tail="/subscriptions/s-1")))
        assert response.json()["status"] == "needs_reconciliation"
        assert len(events_of(pc, migration_id)) == before  # no state change is guessed

    def test_an_unknown_customer_is_unmatched(self, pc):
        pc.new_migration()  # no tenant_guid
        response = post(pc, notification("reseller-relationship-accepted-by-customer", customer()))
        assert response.status_code == 200
        assert response.json()["status"] == "unmatched"


class TestAuthentication:
    def test_refusals_are_401_and_store_nothing(self, pc):
        body = notification("reseller-relationship-accepted-by-customer", customer())
        before = stored(pc)
        other_key, _ = certificate("someone-else")
        cases = {
            "unsigned": {"Content-Type": "application/json"},
            "tampered": signed(body),
            "wrong certificate": signed(body, other_key),
        }
        for name, headers in cases.items():
            sent = body.replace(b"customer", b"customer2") if name == "tampered" else body
            response = pc.client.post(URL, content=sent, headers=headers)
            assert response.status_code == 401, (name, response.text)
        # An unknown partner, a wrong secret and no secret look the same to the caller.
        for url in (
            f"/v1/ingest/partner-center/nobody?secret={SECRET}",
            f"/v1/ingest/partner-center/{PARTNER_A}?secret=wrong",
            f"/v1/ingest/partner-center/{PARTNER_A}",
        ):
            refused = pc.client.post(url, content=body, headers=signed(body))
            assert refused.status_code == 401
            assert refused.json()["error"] == "not_registered"
        assert stored(pc) == before

    def test_a_partner_without_a_pinned_certificate_is_refused(self, api):
        body = notification("reseller-relationship-accepted-by-customer", customer())
        response = post(api, body)
        assert response.status_code == 401
        assert response.json()["error"] == "not_registered"

    def test_a_notification_cannot_be_replayed_to_another_partner(self, pc):
        """Partner Center signs every partner's notifications with one certificate: the secret
        in each partner's webhook URL is what binds a delivery to its partner."""
        from tests.api.conftest import PARTNER_B

        pem, sha256 = read_certificate(CERT)
        pc.tracker.pin_certificate(PARTNER_B, pem, sha256, sha("s3cret-of-northwind"))
        pc.new_migration(tenant_guid=GUID)
        northwind = pc.new_migration("admin_b", tenant_guid=GUID)["id"]
        body = notification("reseller-relationship-accepted-by-customer", customer())
        assert post(pc, body).json()["status"] == "applied"
        replay = pc.client.post(
            f"/v1/ingest/partner-center/{PARTNER_B}?secret={SECRET}",
            content=body,
            headers=signed(body),
        )
        assert replay.status_code == 401
        assert pc.get("admin_b", f"/v1/migrations/{northwind}").json()["stage"] == "invited"

    def test_an_old_notification_is_refused_as_a_replay(self, pc):
        old = datetime.now(UTC) - timedelta(hours=25)
        body = notification("reseller-relationship-accepted-by-customer", customer(), old)
        before = stored(pc)
        response = post(pc, body)
        assert response.status_code == 400
        assert response.json()["error"] == "stale_notification"
        assert stored(pc) == before


class TestRealWorldBodies:
    def test_a_null_audit_uri_is_accepted(self, pc):
        pc.new_migration(tenant_guid=GUID)
        body = json.loads(notification("reseller-relationship-accepted-by-customer", customer()))
        body["AuditUri"] = None
        body["ResourceName"] = None
        raw = json.dumps(body).encode()
        assert post(pc, raw).json()["status"] == "applied"

    def test_a_signed_body_that_is_no_notification_is_kept(self, pc):
        body = b'{"EventName": "x", "ResourceChangeUtcDate": 1700000000}'
        first = post(pc, body)
        assert first.status_code == 200
        assert (first.json()["status"], first.json()["refusal"]) == (
            "rejected",
            "invalid_notification",
        )
        assert post(pc, body).json()["status"] == "duplicate"
        log = pc.get("auditor", "/v1/ingest/partner-center").json()["items"]
        assert [i["event_name"] for i in log] == ["(unreadable body)"]

    def test_activation_after_approval_is_a_duplicate_not_a_rejection(self, pc):
        pc.new_migration(tenant_guid=GUID)
        uri = customer(tail="/adminrelationships/rel-9")
        assert (
            post(pc, notification("granular-admin-relationship-approved", uri)).json()["status"]
            == "applied"
        )
        later = datetime.now(UTC) + timedelta(seconds=1)
        activated = post(pc, notification("granular-admin-relationship-activated", uri, later))
        assert (activated.json()["status"], activated.json()["refusal"]) == (
            "duplicate",
            "relationship_exists",
        )

    def test_a_retry_with_another_offset_or_case_is_the_same_notification(self, pc):
        pc.new_migration(tenant_guid=GUID)
        at = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
        body = json.loads(
            notification("reseller-relationship-accepted-by-customer", customer(), at)
        )
        assert post(pc, json.dumps(body).encode()).json()["status"] == "applied"
        body["EventName"] = body["EventName"].upper()
        body["ResourceChangeUtcDate"] = at.astimezone(timezone(timedelta(hours=1))).isoformat()
        again = post(pc, json.dumps(body).encode()).json()
        assert again["status"] == "duplicate" and again["first"]["status"] == "applied"


class TestIdempotency:
    def test_a_retry_stores_nothing_more(self, pc):
        migration_id = pc.new_migration(tenant_guid=GUID)["id"]
        body = notification("reseller-relationship-accepted-by-customer", customer())
        first = post(pc, body).json()
        before = stored(pc)
        again = post(pc, body).json()
        assert again["status"] == "duplicate"
        assert again["first"]["status"] == "applied"
        assert again["notification_id"] == first["notification_id"]
        assert stored(pc) == before
        assert pc.get("admin_a", f"/v1/migrations/{migration_id}").json()["stage"] == "accepted"

    def test_concurrent_deliveries_store_one_event(self, pc):
        migration_id = pc.new_migration(tenant_guid=GUID)["id"]
        body = notification("reseller-relationship-accepted-by-customer", customer())
        results: list[str] = []

        def deliver() -> None:
            results.append(post(pc, body).json()["status"])

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["applied"] + ["duplicate"] * 7
        kinds = [type(e).__name__ for e in events_of(pc, migration_id)]
        assert kinds.count("InvitationAccepted") == 1
        log = pc.get("auditor", "/v1/ingest/partner-center").json()["items"]
        assert len(log) == 1


class TestMatchingRefusals:
    def test_a_migration_of_another_customer_is_refused(self, pc):
        other_guid = "11111111-2222-4333-8444-555555555555"
        migration_id = pc.new_migration(tenant_guid=other_guid)["id"]
        unmatched = post(pc, notification("reseller-relationship-accepted-by-customer", customer()))
        assert unmatched.json()["status"] == "unmatched"
        response = pc.post(
            "admin_a",
            f"/v1/ingest/partner-center/{unmatched.json()['notification_id']}/match",
            {"migration_id": migration_id},
        )
        assert response.status_code == 409
        assert response.json()["error"] == "tenant_guid_mismatch"

    def test_an_expired_certificate_is_not_pinned(self, api):
        from domain.errors import InvalidInput

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
        old = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(datetime.now(UTC) - timedelta(days=30))
            .not_valid_after(datetime.now(UTC) - timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        with pytest.raises(InvalidInput, match="certificate_expired"):
            read_certificate(old.public_bytes(serialization.Encoding.PEM))


class TestMatching:
    def test_unmatched_then_matched_then_automatic(self, pc):
        migration_id = pc.new_migration()["id"]
        pc.event(migration_id, ORIGINAL)
        unmatched = post(pc, notification("reseller-relationship-accepted-by-customer", customer()))
        notification_id = unmatched.json()["notification_id"]
        assert unmatched.json()["status"] == "unmatched"
        refused = pc.post(
            "sales_a",
            f"/v1/ingest/partner-center/{notification_id}/match",
            {"migration_id": migration_id},
        )
        assert refused.status_code == 403
        matched = pc.post(
            "admin_a",
            f"/v1/ingest/partner-center/{notification_id}/match",
            {"migration_id": migration_id},
        )
        assert matched.status_code == 200, matched.text
        assert matched.json()["status"] == "applied"
        assert matched.json()["matched_by"] == "admin-a"
        state = pc.get("admin_a", f"/v1/migrations/{migration_id}").json()
        assert state["tenant_guid"] == GUID and state["stage"] == "accepted"
        again = pc.post(
            "admin_a",
            f"/v1/ingest/partner-center/{notification_id}/match",
            {"migration_id": migration_id},
        )
        assert again.status_code == 409
        # From now on the tenant matches by itself.
        uri = customer(tail="/adminrelationships/rel-7")
        later = post(pc, notification("granular-admin-relationship-activated", uri))
        assert later.json()["status"] == "applied"
        assert later.json()["migration_id"] == migration_id

    def test_another_partner_cannot_see_or_match_it(self, pc):
        migration_id = pc.new_migration()["id"]
        unmatched = post(pc, notification("reseller-relationship-accepted-by-customer", customer()))
        notification_id = unmatched.json()["notification_id"]
        other = pc.post(
            "admin_b",
            f"/v1/ingest/partner-center/{notification_id}/match",
            {"migration_id": migration_id},
        )
        assert other.status_code == 404
        assert pc.get("admin_b", "/v1/ingest/partner-center").json()["items"] == []
        mine = pc.get("admin_a", "/v1/ingest/partner-center", params={"status": "unmatched"})
        assert [i["id"] for i in mine.json()["items"]] == [notification_id]
        assert (
            pc.get("admin_a", "/v1/ingest/partner-center", params={"status": "nope"}).status_code
            == 422
        )


def test_log_times_out_of_range_are_422(pc):
    for value in ("0001-01-01", "9999-12-31T23:59:59.999999-23:59"):
        response = pc.get("auditor", "/v1/ingest/partner-center", params={"since": value})
        assert response.status_code == 422, response.text
