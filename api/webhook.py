"""Partner Center's webhook signatures: RSA-SHA256 over the raw body, checked against the
certificate pinned for the partner (`csp-tracker partners pin-certificate`). The service never
downloads a certificate: `X-MS-Certificate-Url` is not followed."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from api.errors import ApiError
from domain.errors import InvalidInput


def read_certificate(pem: bytes) -> tuple[str, str]:
    """(the certificate in PEM, the SHA-256 of its DER in hex), or a refusal."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise InvalidInput("invalid_certificate", "not an X.509 certificate in PEM") from None
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise InvalidInput("invalid_certificate", "Partner Center signs with RSA keys")
    if certificate.not_valid_after_utc < datetime.now(UTC):
        raise InvalidInput(
            "certificate_expired",
            f"the certificate expired on {certificate.not_valid_after_utc.date().isoformat()}",
        )
    der = certificate.public_bytes(Encoding.DER)
    return certificate.public_bytes(Encoding.PEM).decode(), hashes_sha256(der)


def hashes_sha256(data: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


def _refuse(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


def new_secret() -> tuple[str, str]:
    """A webhook URL secret and its SHA-256 (only the hash is stored)."""
    secret = secrets.token_urlsafe(32)
    return secret, hashes_sha256(secret.encode())


def check_secret(expected_sha256: str | None, given: str) -> None:
    """Refuse (401) unless `given` is the partner's webhook secret. Unknown partners, partners
    without a certificate or secret, and a wrong secret all look the same to the caller."""
    if expected_sha256 is None or not hmac.compare_digest(
        expected_sha256, hashes_sha256(given.encode())
    ):
        raise _refuse("not_registered", "no webhook is registered at this address")


def verify_signature(pem: str | None, body: bytes, authorization: str, algorithm: str) -> None:
    """Refuse (401) unless `authorization` is `Signature <base64>` of `body`, made with the key
    of the pinned certificate `pem`, with the algorithm rsa-sha256."""
    if pem is None:
        raise _refuse("no_pinned_certificate", "no certificate is pinned for this partner")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "signature" or not value.strip():
        raise _refuse("unsigned", "expected Authorization: Signature <base64>")
    if algorithm.strip().lower() != "rsa-sha256":
        raise _refuse("unsupported_algorithm", "X-MS-Signature-Algorithm must be rsa-sha256")
    try:
        signature = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("bad_signature", "the signature is not base64") from None
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    if not isinstance(key, rsa.RSAPublicKey):  # read_certificate pins only RSA keys
        raise _refuse("no_pinned_certificate", "the pinned certificate has no RSA key")
    try:
        key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise _refuse(
            "bad_signature", "the signature does not match the pinned certificate"
        ) from None
