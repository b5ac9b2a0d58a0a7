"""Signed tree heads: the ledger's root at a size, signed with an Ed25519 key kept outside the
database, so that nobody who can only write to the database can forge or rewrite one.

The signed message is the canonical JSON of the head without its signature:
`{"key_id":...,"root_hash":...,"timestamp":...,"tree_size":...}` (keys sorted, no spaces, UTF-8),
where `root_hash` is lower-case hex, `timestamp` ISO-8601 UTC with microseconds and `key_id` the
lower-case hex SHA-256 of the raw 32-byte public key. docs/audit.md repeats this for verifiers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(ValueError):
    """A key file that is missing, unreadable or not an Ed25519 key."""


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: str
    timestamp: str
    key_id: str
    signature: str = ""

    def message(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TreeHead:
        """Exactly the documented shape: an integer size, and strings."""
        if not isinstance(data, dict):
            raise ValueError("not a signed tree head: not an object")
        size = data.get("tree_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("not a signed tree head: tree_size must be a whole number")
        texts = ("root_hash", "timestamp", "key_id", "signature")
        if not all(isinstance(data.get(k), str) for k in texts):
            raise ValueError(f"not a signed tree head: {', '.join(texts)} must be strings")
        return cls(size, data["root_hash"], data["timestamp"], data["key_id"], data["signature"])


def state_file(key_path: str | Path) -> Path:
    path = Path(key_path)
    return path.with_name(path.name + ".last-head.json")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A public key from a PEM file, or the public half of a private key file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            raise KeyFileError(f"{path} holds no Ed25519 key in PEM") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


def verify_head(head: TreeHead, public_key: Ed25519PublicKey) -> str | None:
    """None if `head` is signed by `public_key`, else the reason it is not."""
    if head.key_id != key_id(public_key):
        return f"signed with key {head.key_id[:16]}, not the expected {key_id(public_key)[:16]}"
    try:
        public_key.verify(base64.b64decode(head.signature, validate=True), head.message())
    except (InvalidSignature, ValueError):
        return "bad signature"
    return None


class Signer:
    """Signs tree heads with a private key read from a file (never from the database).

    The signer remembers, beside its key (`<key>.last-head.json`), the last head it signed, and
    signs a new head only for a tree that extends it (a consistency proof, checked by the
    caller): whoever can only write to the database cannot get a rewritten history signed, even
    after deleting the stored heads and rebuilding the ledger.
    """

    def __init__(self, private_key: Ed25519PrivateKey, state: Path | None = None) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)
        self.state = state

    def last_head(self) -> TreeHead | None:
        """The last head this key signed here, as its signer recorded it (None: none yet)."""
        if self.state is None or not self.state.exists():
            return None
        head = TreeHead.from_dict(json.loads(self.state.read_text()))
        if verify_head(head, self.public_key) is not None:
            raise KeyFileError(f"{self.state} holds a head this key did not sign")
        return head

    def remember(self, head: TreeHead) -> None:
        if self.state is None:
            return
        partial = self.state.with_name(self.state.name + ".tmp")
        partial.write_text(json.dumps(head.to_dict()))
        os.replace(partial, self.state)

    @classmethod
    def from_file(cls, path: str | Path) -> Signer:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"no signing key at {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise KeyFileError(f"{path} holds no unencrypted private key in PEM") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path} is not an Ed25519 private key")
        return cls(key, state_file(path))

    @staticmethod
    def generate(path: str | Path) -> Signer:
        """Create a new key file (mode 0600); refuses to overwrite one."""
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{path} exists: not overwriting a signing key") from None
        except OSError as exc:
            raise KeyFileError(f"cannot create {path}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return Signer(key, state_file(path))

    def sign(self, tree_size: int, root: bytes, at: datetime | None = None) -> TreeHead:
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
        head = TreeHead(tree_size, root.hex(), when, self.key_id)
        signature = base64.b64encode(self._key.sign(head.message())).decode()
        return TreeHead(tree_size, root.hex(), when, self.key_id, signature)
