"""Partner Center's webhook signatures: RSA-SHA256 over the raw body, checked against the
certificate pinned for the partner (`csp-tracker partners pin-certificate`). The service never
downloads a certificate: `X-MS-Certificate-Url` is not followed."""

from __future__ import annotations

import base64
import binascii

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
    der = certificate.public_bytes(Encoding.DER)
    return certificate.public_bytes(Encoding.PEM).decode(), hashes_sha256(der)


def hashes_sha256(data: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


def _refuse(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


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
