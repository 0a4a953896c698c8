"""Pytest fixtures for testing code that uses Tickr, against a real Redis.

Load it from a conftest.py::

    pytest_plugins = ["tickr.testing.pytest_plugin"]

Fixtures:

- ``tickr_redis_server`` (session): a private `RedisServer`.  With
  ``$TICKR_TEST_REDIS_URL`` set, that Redis is used instead and this fixture is None;
  so it is with ``$TICKR_TEST_TOPOLOGY`` set to ``cluster`` (a private Redis Cluster of
  3 primaries with a replica each, `ClusterServers`) or ``sentinel`` (a primary, a
  replica and 3 sentinels, `SentinelServers`), started for the session.
- ``tickr_redis_url`` (session): the URL of that Redis (or Cluster, or Sentinel).
- ``tickr_namespace``: a fresh namespace per test, so tests never see each other's keys.
- ``tickr_client``: a `Client` on that URL and namespace (needs pytest-asyncio).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tickr.client import Client
from tickr.testing import RedisServer

__all__ = ["tickr_client", "tickr_namespace", "tickr_redis_server", "tickr_redis_url"]

URL_VARIABLE = "TICKR_TEST_REDIS_URL"
TOPOLOGY_VARIABLE = "TICKR_TEST_TOPOLOGY"


@pytest.fixture(scope="session")
def tickr_redis_server() -> Iterator[RedisServer | None]:
    """A redis-server for the whole session (None with either variable set)."""
    if os.environ.get(URL_VARIABLE) or os.environ.get(TOPOLOGY_VARIABLE):
        yield None
        return
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def tickr_redis_url(tickr_redis_server: RedisServer | None) -> Iterator[str]:
    """The URL of the test Redis (or of the topology $TICKR_TEST_TOPOLOGY names).

    Raises:
        ValueError: If $TICKR_TEST_TOPOLOGY is neither ``cluster`` nor ``sentinel``.
    """
    if tickr_redis_server is not None:
        yield tickr_redis_server.url
        return
    topology = os.environ.get(TOPOLOGY_VARIABLE)
    if not topology:
        yield os.environ[URL_VARIABLE]
        return
    from tickr.testing.topology import ClusterServers, SentinelServers

    servers: ClusterServers | SentinelServers
    if topology == "cluster":
        servers = ClusterServers(extra_args=["--cluster-require-full-coverage", "no"])
    elif topology == "sentinel":
        servers = SentinelServers()
    else:
        raise ValueError(f"${TOPOLOGY_VARIABLE} must be cluster or sentinel, not {topology!r}")
    with servers:
        yield servers.url


@pytest.fixture
def tickr_namespace() -> str:
    """A namespace no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the async fixture needs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def tickr_client(tickr_redis_url: str, tickr_namespace: str) -> AsyncIterator[Client]:
        """A Client on the test Redis, in the test's namespace."""
        async with Client(tickr_redis_url, namespace=tickr_namespace) as client:
            yield client
