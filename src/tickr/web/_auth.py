"""Who is asking: bearer tokens, the scopes of anonymous requests, and a brake on guessing.

`Guard.authorize` answers 401 for a missing or unknown token, 403 for a token without
the scope or the queue, and 429 for an address that presented too many unknown tokens
lately (`FailedAuthLimiter`), before it looks at the token at all, so that a guesser
learns nothing while it waits.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Final

from starlette.requests import Request

from tickr.web._problems import Failure
from tickr.web.tokens import SCOPES, Token, TokenStore

__all__ = [
    "ANONYMOUS",
    "FailedAuthLimiter",
    "Guard",
    "client_address",
    "limiter_key",
    "local_request",
]

ANONYMOUS: Final = "anonymous"
"""The actor named in the audit log for a request without a token."""

_logger = logging.getLogger("tickr.web")


def client_address(request: Request) -> str:
    """The client's address as the server saw it (behind a proxy: as forwarded)."""
    return request.client.host if request.client is not None else ""


_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _host_of(value: str) -> str:
    """The host name of a Host header or an Origin, without port or scheme."""
    host = value.rpartition("://")[2].split("/", 1)[0].lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def local_request(request: Request) -> bool:
    """Whether a request is addressed to this machine by its own name, from its own pages.

    Anonymous access is for the machine's own programs and browser: a request sent by
    another site (its Origin) or through a name that resolves here (DNS rebinding: its
    Host) is not.
    """
    host = _host_of(request.headers.get("host", ""))
    origin = request.headers.get("origin")
    return host in _LOCAL_HOSTS and (origin is None or _host_of(origin) in _LOCAL_HOSTS)


def limiter_key(address: str) -> str:
    """What failures are counted by: the address, or an IPv6 address's /64 network."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6 and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


class FailedAuthLimiter:
    """Counts unknown tokens per client address; too many in a window blocks the address.

    Args:
        failures: Unknown tokens an address may present within `window` seconds.
        window: The length of the window, in seconds.
        addresses: How many addresses are remembered at most (the least recently
            failing are forgotten first), so that a flood of addresses cannot fill memory.
        clock: Seconds from a monotonic clock (tests pass their own).

    Raises:
        ValueError: If failures, window or addresses is not positive.
    """

    def __init__(
        self,
        failures: int = 10,
        window: float = 60.0,
        *,
        addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or window <= 0 or addresses < 1:
            raise ValueError("failures, window and addresses must be positive")
        self.failures = failures
        self.window = window
        self._addresses = addresses
        self._clock = clock
        self._failed: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked_for(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        times = self._failed.get(address)
        if times is None or len(times) < self.failures:
            return 0.0
        return max(0.0, times[0] + self.window - self._clock())

    def failed(self, address: str) -> None:
        """Count one unknown token from `address`."""
        times = self._failed.pop(address, None)
        if times is None:
            times = deque(maxlen=self.failures)
        times.append(self._clock())
        self._failed[address] = times
        while len(self._failed) > self._addresses:
            self._failed.popitem(last=False)
        if len(times) == self.failures and self.blocked_for(address) > 0:
            _logger.warning(
                "%d unknown tokens from %s within %g s: refusing it for a while",
                self.failures,
                address or "an unknown address",
                self.window,
            )


class Guard:
    """Decides whether a request may do what it asks.

    Args:
        tokens: The accepted tokens.
        anonymous_scopes: The scopes of a request without an Authorization header
            (none: such a request gets 401).
        read_only: Refuse every change.
        limiter: The brake on unknown tokens.

    Raises:
        ValueError: For an unknown scope in `anonymous_scopes`.
    """

    def __init__(
        self,
        tokens: TokenStore,
        *,
        anonymous_scopes: Iterable[str] = (),
        read_only: bool = False,
        limiter: FailedAuthLimiter | None = None,
    ) -> None:
        scopes = frozenset(anonymous_scopes)
        if not scopes <= SCOPES:
            raise ValueError(f"anonymous_scopes: unknown scope(s) {sorted(scopes - SCOPES)}")
        self.tokens = tokens
        self.read_only = read_only
        self.limiter = limiter or FailedAuthLimiter()
        # No secret hashes to all zeros, so this token is only ever given, never found.
        self.anonymous = Token(ANONYMOUS, sha256="0" * 64, scopes=scopes) if scopes else None

    def authenticate(self, request: Request) -> Token:
        """The token of the request (kept in ``request.state.tickr_token``).

        Raises:
            Failure: 401 for a missing or unknown token, 429 for an address that
                presented too many unknown tokens lately.
        """
        header = request.headers.get("authorization")
        if header is None and self.anonymous is not None:
            if not local_request(request):
                raise Failure(
                    403,
                    "requests without a token must come from this machine's own pages "
                    "(Host 127.0.0.1, localhost or [::1], and no other site's Origin)",
                )
            request.state.tickr_token = self.anonymous
            return self.anonymous
        address = limiter_key(client_address(request))
        wait = self.limiter.blocked_for(address)
        if wait > 0:
            raise Failure(
                429,
                "too many unknown tokens from this address; try again later",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        kind, _, secret = (header or "").partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise Failure(401, "a bearer token is required")
        token = self.tokens.find(secret.strip())
        if token is None:
            self.limiter.failed(address)
            raise Failure(401, "unknown token")
        request.state.tickr_token = token
        return token

    def authorize(self, request: Request, scope: str, queue: str | None = None) -> Token:
        """The token of the request, if it has `scope` on `queue`.

        Raises:
            Failure: As `authenticate`, or 403 for a token without the scope or queue.
        """
        token = self.authenticate(request)
        if not token.allows(scope, queue):
            where = f" on queue {queue!r}" if queue is not None else ""
            raise Failure(403, f"token {token.name!r} lacks {scope!r}{where}")
        return token

    def writable(self) -> None:
        """Refuse a change when the app is read-only.

        Raises:
            Failure: 403 in read-only mode.
        """
        if self.read_only:
            raise Failure(403, "the API is read-only")
