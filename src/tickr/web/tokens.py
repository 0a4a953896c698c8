"""Bearer tokens: who may call the HTTP API, on which queues, with which scopes.

A token is stored as the SHA-256 of its secret, never the secret.  A presented secret is
hashed once and compared with every token's digest in constant time, so the reply's
timing tells nothing about which tokens exist.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["SCOPES", "Token", "TokenStore", "load_token_file"]

SCOPES: Final = frozenset(
    {"tasks:submit", "tasks:read", "payload:read", "tasks:manage", "queues:manage", "admin"}
)
"""Every scope a token may have; ``admin`` implies all the others."""

_HEX_DIGEST: Final = re.compile(r"[0-9a-f]{64}")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True, init=False)
class Token:
    """A named bearer token with scopes and the queue patterns it may touch.

    Args:
        name: Shown in the audit log; not secret.
        secret: The token itself (it is hashed at once and not kept).
        sha256: Or the hex SHA-256 of the secret, as a token file holds it.
        scopes: Some of `SCOPES`.
        queues: Shell-style patterns of the queues it may touch (``email*``);
            default every queue.

    Raises:
        TypeError: For an argument of the wrong type.
        ValueError: For an empty name, both or neither of secret and sha256, a digest
            that is not 64 hex digits, an unknown scope or an empty queue pattern.
    """

    name: str
    sha256: str
    scopes: frozenset[str]
    queues: tuple[str, ...]

    def __init__(
        self,
        name: str,
        *,
        secret: str | None = None,
        sha256: str | None = None,
        scopes: Iterable[str] = (),
        queues: Iterable[str] = ("*",),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a token needs a non-empty name")
        if (secret is None) == (sha256 is None):
            raise ValueError(f"token {name!r}: give its secret or its sha256, not both")
        if secret is not None:
            if not isinstance(secret, str) or len(secret) < 16:
                raise ValueError(f"token {name!r}: a secret is a str of 16 characters or more")
            digest = _digest(secret)
        else:
            if not isinstance(sha256, str) or not _HEX_DIGEST.fullmatch(sha256.lower()):
                raise ValueError(f"token {name!r}: sha256 must be 64 hex digits")
            digest = sha256.lower()
        if isinstance(scopes, str) or isinstance(queues, str):
            raise TypeError(f"token {name!r}: scopes and queues are lists of str")
        scope_set = frozenset(scopes)
        unknown = sorted(scope for scope in scope_set if scope not in SCOPES)
        if unknown:
            raise ValueError(f"token {name!r}: unknown scope(s) {', '.join(map(repr, unknown))}")
        patterns = tuple(queues)
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"token {name!r}: queues must be non-empty patterns")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "sha256", digest)
        object.__setattr__(self, "scopes", scope_set)
        object.__setattr__(self, "queues", patterns)

    def allows(self, scope: str, queue: str | None = None) -> bool:
        """Whether this token has `scope` (or ``admin``), and may touch `queue`."""
        if scope not in self.scopes and "admin" not in self.scopes:
            return False
        return queue is None or self.may_touch(queue)

    def may_touch(self, queue: str) -> bool:
        """Whether `queue` matches one of the token's queue patterns."""
        return any(fnmatch.fnmatchcase(queue, pattern) for pattern in self.queues)

    def __repr__(self) -> str:
        return f"Token({self.name!r}, scopes={sorted(self.scopes)}, queues={list(self.queues)})"


class TokenStore:
    """The tokens the app accepts; replaceable at run time (a re-read token file)."""

    def __init__(self, tokens: Iterable[Token] = ()) -> None:
        self.replace(tokens)

    def replace(self, tokens: Iterable[Token]) -> None:
        """Accept exactly these tokens from now on.

        Raises:
            TypeError: If one is not a Token.
            ValueError: If two tokens share a name or a secret.
        """
        checked = list(tokens)
        if not all(isinstance(token, Token) for token in checked):
            raise TypeError("tokens must be tickr.web.Token objects")
        names = [token.name for token in checked]
        if len(set(names)) != len(names):
            raise ValueError("two tokens have the same name")
        if len({token.sha256 for token in checked}) != len(checked):
            raise ValueError("two tokens have the same secret")
        self._tokens: Sequence[Token] = tuple(checked)

    def __len__(self) -> int:
        return len(self._tokens)

    def __iter__(self) -> Iterator[Token]:
        return iter(self._tokens)

    def find(self, secret: str) -> Token | None:
        """The token whose secret this is, comparing with every token in constant time."""
        presented = _digest(secret).encode()
        found = None
        for token in self._tokens:
            if hmac.compare_digest(presented, token.sha256.encode()):
                found = token
        return found


def load_token_file(path: str | Path) -> list[Token]:
    """The tokens of a TOML token file.

    The file holds ``[[token]]`` tables with ``name``, ``secret`` or ``sha256``,
    ``scopes`` and optionally ``queues``.

    Raises:
        OSError: If the file cannot be read.
        ValueError: If it is not TOML, or an entry is not a valid token (the message
            names the file and the entry).
    """
    source = Path(path)
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    entries = document.get("token", [])
    if not isinstance(entries, list):
        raise ValueError(f"{source}: 'token' must be an array of tables ([[token]])")
    unknown = sorted(set(document) - {"token"})
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}")
    tokens = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: token {number} is not a table")
        extra = sorted(set(entry) - {"name", "secret", "sha256", "scopes", "queues"})
        if extra:
            raise ValueError(f"{source}: token {number}: unknown key(s) {', '.join(extra)}")
        try:
            tokens.append(
                Token(
                    entry.get("name", ""),
                    secret=entry.get("secret"),
                    sha256=entry.get("sha256"),
                    scopes=entry.get("scopes", ()),
                    queues=entry.get("queues", ("*",)),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: token {number}: {exc}") from None
    return tokens
