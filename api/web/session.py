"""Sign-in for the web pages: the same API keys, kept in an encrypted, HttpOnly cookie.

The cookie holds the API key itself, encrypted and authenticated with Fernet (AES-128-CBC and
HMAC-SHA256, from `cryptography`) under the server's session secret, with its issue time. Every
request then authenticates the key exactly as the API does (`KeyCache`), so a key revoked with
`csp-tracker keys revoke` ends its sessions at the next request; a session also ends after
`SESSION_HOURS`, or when the user signs out.

CSRF: every form that changes anything carries a token that is an HMAC of the session cookie
under the same secret (a token bound to the session, which a page of another site cannot read),
and a POST whose Origin (or Referer) names another host is refused. The cookie is
SameSite=Strict besides. The sign-in form, before any session, is bound the same way to a
random pre-session cookie, so another site cannot sign a visitor in with its own key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Request
from fastapi.responses import Response

SESSION_COOKIE = "csp_session"
SIGNIN_COOKIE = "csp_signin"
SESSION_HOURS = 12
_SEP = "\n"


class SessionKeys:
    """The session secret: Fernet's key, and a key for CSRF tokens derived from it."""

    def __init__(self, secret: bytes) -> None:
        self._fernet = Fernet(secret)
        self._mac_key = hashlib.sha256(b"csrf:" + secret).digest()

    @classmethod
    def from_file(cls, path: Path) -> SessionKeys:
        """The secret in `path`, created (mode 0600) when missing: every process that serves
        the pages must read the same file, or sessions would not cross between them."""
        try:
            return cls(path.read_bytes().strip())
        except FileNotFoundError:
            secret = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secret + b"\n")
            return cls(secret)
        except ValueError as exc:  # not a Fernet key
            raise ValueError(f"{path} does not hold a session secret: {exc}") from None

    # -- the session --------------------------------------------------------------------------
    def seal(self, token: str, now: float | None = None) -> str:
        issued = time.time() if now is None else now
        plain = f"{issued:.6f}{_SEP}{token}".encode()
        return self._fernet.encrypt_at_time(plain, int(issued)).decode()

    def open(self, cookie: str | None, now: float | None = None) -> str | None:
        """The API key in a session cookie; None when absent, forged or older than
        SESSION_HOURS."""
        opened = self.open_with_time(cookie, now)
        return None if opened is None else opened[0]

    def open_with_time(
        self, cookie: str | None, now: float | None = None
    ) -> tuple[str, float] | None:
        """(API key, when the session began) of a session cookie; None as `open`."""
        if not cookie:
            return None
        try:
            at = int(time.time() if now is None else now)
            plain = self._fernet.decrypt_at_time(cookie.encode(), SESSION_HOURS * 3600, at)
            issued, _, token = plain.decode().partition(_SEP)
            began = float(issued)
        except (InvalidToken, ValueError):
            return None
        return (token, began) if token else None

    # -- CSRF, and other values only this server can make ---------------------------------------
    def csrf_token(self, bound_to: str) -> str:
        return self.mac("csrf", bound_to)

    def mac(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of `value` for one `purpose` (so a token made for one use is never
        valid for another)."""
        message = f"{purpose}\n{value}".encode()
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()

    def csrf_ok(self, bound_to: str | None, token: str | None) -> bool:
        if not bound_to or not token:
            return False
        return hmac.compare_digest(self.csrf_token(bound_to), token)


def same_origin(request: Request) -> bool:
    """A POST from our own pages: its Origin (or, without one, its Referer) names this host.
    Neither header (some privacy tools strip both) is let through: the CSRF token decides."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    return urlsplit(source).netloc == request.headers.get("host", "")


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def new_signin_nonce() -> str:
    return secrets.token_urlsafe(24)
