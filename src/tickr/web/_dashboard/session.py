"""Signed session cookies and the CSRF tokens of the dashboard's forms.

A session cookie holds a nonce, an expiry and a fingerprint of the token that logged in
(an HMAC of the token's digest, so the cookie reveals nothing about the token), signed
with HMAC-SHA256 under the app's session key.  A session ends at its expiry, at logout
(the cookie is cleared), or when its token is no longer accepted (a re-read token file).
Each form carries a CSRF token: an HMAC of the session's nonce, checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from tickr.web.tokens import Token, TokenStore

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "Session", "SessionKeys"]

SESSION_COOKIE: Final = "tickr_session"
LOGIN_COOKIE: Final = "tickr_login"
"""The cookie of a login form's CSRF nonce, before there is a session."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A verified session: its token, its nonce and its expiry (Unix seconds)."""

    token: Token
    nonce: str
    expires: float


class SessionKeys:
    """Signs and verifies session cookies and CSRF tokens under one secret key.

    Args:
        secret: The key (32 random bytes or more); None makes a fresh one, so that
            sessions end when the process does.
        max_age: Seconds a session lasts.
        clock: Unix seconds (tests pass their own).

    Raises:
        ValueError: For a key shorter than 32 bytes or a max_age that is not positive.
    """

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        max_age: float = 8 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = secrets.token_bytes(32) if secret is None else secret
        if len(key) < 32:
            raise ValueError("a session secret has 32 bytes or more")
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        self._key = key
        self.max_age = max_age
        self._clock = clock

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def fingerprint(self, token: Token) -> str:
        """What a cookie says of its token: an HMAC of the token's digest."""
        return _b64(self._mac("token", token.sha256.encode())[:16])

    def _sign(self, purpose: str, document: dict[str, object]) -> str:
        body = _b64(json.dumps(document, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._mac(purpose, body.encode()))}"

    def _open(self, purpose: str, value: str) -> dict[str, object] | None:
        body, _, signature = value.partition(".")
        try:
            expected = self._mac(purpose, body.encode())
            if not hmac.compare_digest(_unb64(signature), expected):
                return None
            document = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        return document if isinstance(document, dict) else None

    def new_session(self, token: Token) -> tuple[str, Session]:
        """A cookie value for a fresh session of `token`, and the session."""
        nonce = secrets.token_urlsafe(16)
        expires = self._clock() + self.max_age
        value = self._sign("session", {"n": nonce, "e": expires, "t": self.fingerprint(token)})
        return value, Session(token, nonce, expires)

    def open_session(self, value: str | None, tokens: TokenStore) -> Session | None:
        """The session of a cookie, if it is signed, current, and its token still valid."""
        document = self._open("session", value or "")
        if document is None:
            return None
        nonce, expires, fingerprint = document.get("n"), document.get("e"), document.get("t")
        if not isinstance(nonce, str) or not isinstance(expires, int | float):
            return None
        if expires <= self._clock():
            return None
        for token in tokens:
            if hmac.compare_digest(self.fingerprint(token), str(fingerprint)):
                return Session(token, nonce, float(expires))
        return None

    def login_nonce(self) -> tuple[str, str]:
        """A signed cookie value for a login form, and its nonce."""
        nonce = secrets.token_urlsafe(16)
        return self._sign("login", {"n": nonce, "e": self._clock() + 3600}), nonce

    def open_login(self, value: str | None) -> str | None:
        """The nonce of a login cookie, if it is signed and current."""
        document = self._open("login", value or "")
        if document is None:
            return None
        nonce, expires = document.get("n"), document.get("e")
        if not isinstance(nonce, str) or not isinstance(expires, int | float):
            return None
        return nonce if expires > self._clock() else None

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the forms of the session (or login form) with `nonce`."""
        return _b64(self._mac("csrf", nonce.encode()))

    def csrf_valid(self, nonce: str, presented: str | None) -> bool:
        """Whether a form's CSRF token is the one of `nonce` (constant time)."""
        return presented is not None and hmac.compare_digest(self.csrf(nonce), presented)
