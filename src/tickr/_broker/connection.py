"""Which Redis to use: the URL forms, and the client types users may pass.

Three kinds of deployment are reached by URL:

- one Redis: ``redis://``, ``rediss://`` (TLS), ``unix://``;
- Redis Cluster: ``redis+cluster://[[user]:password@]host[:port][,host[:port]...]`` (the
  seed nodes; ``rediss+cluster://`` for TLS);
- Sentinel: ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``
  (the sentinels; the query may carry ``sentinel_username`` and ``sentinel_password``;
  ``rediss+sentinel://`` for TLS to the data nodes).

The user and password are the data nodes'.  Query options starting with ``ssl_`` are the
TLS settings of a ``rediss`` form, as redis-py reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias
from urllib.parse import parse_qsl, unquote

from redis.asyncio import Redis, RedisCluster

__all__ = [
    "DEFAULT_URL",
    "URL_VARIABLE",
    "ClusterTarget",
    "RedisClient",
    "SentinelTarget",
    "parse_multi_host_url",
    "resolve_url",
]

RedisClient: TypeAlias = Redis | RedisCluster
"""The client types users may pass as ``redis=``: a `redis.asyncio.Redis` (also one made
by ``Sentinel.master_for(...)``) or a `redis.asyncio.RedisCluster`."""

URL_VARIABLE: Final = "TICKR_REDIS_URL"
DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"

_DEFAULT_PORT: Final = 6379
_DEFAULT_SENTINEL_PORT: Final = 26379
CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")


def resolve_url(url: str | None) -> str:
    """The URL to use: `url`, else $TICKR_REDIS_URL, else the local default."""
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


@dataclass(frozen=True)
class ClusterTarget:
    """A Redis Cluster, reached through its seed nodes."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ssl_options: dict[str, Any] = field(default_factory=dict)
    """The ``ssl_*`` options of the URL's query (ssl_ca_certs, ssl_certfile...)."""


@dataclass(frozen=True)
class SentinelTarget:
    """The primary that Sentinel names for `service`, reached through the sentinels."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    ssl_options: dict[str, Any] = field(default_factory=dict)
    """The ``ssl_*`` options of the URL's query, for the data nodes."""


def _hosts(text: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [IPv6]:port
            host, _, rest = part[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = part.rpartition(":") if ":" in part else (part, "", "")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ValueError(f"invalid port {port_text!r} in {url!r}") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"invalid host {part!r} in {url!r}")
        hosts.append((host, port))
    if not hosts:
        raise ValueError(f"no host in {url!r}")
    return tuple(hosts)


def parse_multi_host_url(url: str) -> ClusterTarget | SentinelTarget | None:
    """The Cluster or Sentinel target of a URL, or None for a one-Redis URL.

    Raises:
        ValueError: If the URL has a Cluster or Sentinel scheme but is malformed.
    """
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in CLUSTER_SCHEMES + SENTINEL_SCHEMES:
        return None
    rest, _, query_text = rest.partition("?")
    rest = rest.partition("#")[0]
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts_text = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon else None
    query = dict(parse_qsl(query_text))
    tls = scheme.startswith("rediss")
    ssl_options = {name: value for name, value in query.items() if name.startswith("ssl_")}
    if scheme in CLUSTER_SCHEMES:
        if path.strip("/"):
            raise ValueError(f"a cluster URL has no database or path: {url!r}")
        return ClusterTarget(
            _hosts(hosts_text, _DEFAULT_PORT, url), username, password, tls, ssl_options
        )
    parts = [unquote(part) for part in path.split("/") if part]
    if not parts or len(parts) > 2:
        raise ValueError(f"a sentinel URL names its service: .../service_name[/db] in {url!r}")
    try:
        db = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise ValueError(f"invalid database {parts[1]!r} in {url!r}") from None
    return SentinelTarget(
        sentinels=_hosts(hosts_text, _DEFAULT_SENTINEL_PORT, url),
        service=parts[0],
        db=db,
        username=username,
        password=password,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        tls=tls,
        ssl_options=ssl_options,
    )
