"""The start-up checks of the Redis a server works with."""

from __future__ import annotations

import logging
import re
from typing import Final

from tickr._broker import Broker
from tickr.errors import RedisUnavailable, TickrError

__all__ = ["MINIMUM_REDIS_VERSION", "check_redis", "version_problem"]

logger = logging.getLogger("tickr.server")

MINIMUM_REDIS_VERSION: Final = (6, 2)
"""`LPOP` with a count and a `BLPOP` timeout that is not a whole number need 6.2."""


def version_problem(version: str) -> str | None:
    """Why a server cannot work with Redis `version`, or None when it can.

    An unreadable version (a Redis-compatible server may report anything) is given the
    benefit of the doubt.
    """
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        return None
    found = (int(match[1]), int(match[2]))
    if found >= MINIMUM_REDIS_VERSION:
        return None
    wanted = ".".join(map(str, MINIMUM_REDIS_VERSION))
    return f"a Tickr server needs Redis {wanted} or newer, and this Redis is {version}"


async def check_redis(broker: Broker) -> None:
    """Refuse a Redis too old to serve; warn when Redis may evict or lose Tickr's keys.

    Raises:
        TickrError: If Redis is older than `MINIMUM_REDIS_VERSION`.
        RedisUnavailable: If Redis cannot be reached.
    """
    try:
        nodes = await broker.redis_settings()
    except RedisUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - the other checks are not worth failing for
        logger.info("could not read Redis' settings (%s)", exc)
        return
    warnings: dict[str, int] = {}
    for settings in nodes:
        for warning in _node_warnings(settings):
            warnings[warning] = warnings.get(warning, 0) + 1
    for warning, count in warnings.items():
        if len(nodes) > 1:
            warning = f"{warning} (on {count} of {len(nodes)} nodes)"
        logger.warning("%s", warning)


def _node_warnings(settings: dict[str, str]) -> list[str]:
    """What endangers tasks on one node.

    Raises:
        TickrError: If the node runs a Redis older than `MINIMUM_REDIS_VERSION`.
    """
    problem = version_problem(settings["redis_version"])
    if problem is not None:
        raise TickrError(problem)
    warnings = []
    policy = settings["maxmemory_policy"]
    if policy not in ("noeviction", "unknown"):
        warnings.append(
            f"Redis' maxmemory-policy is {policy}: when memory runs out Redis may evict "
            "Tickr's keys and lose tasks; use noeviction"
        )
    if settings["aof_enabled"] != "0":
        return warnings
    snapshots = settings["save"]
    if snapshots in ("", '""'):
        warnings.append(
            "Redis persistence is off (no AOF, no snapshots): a Redis restart loses every "
            "task; set appendonly yes"
        )
    else:
        warnings.append(
            "Redis' append-only file is off: a Redis crash loses what was written since "
            f"the last snapshot (save {snapshots}); set appendonly yes"
        )
    return warnings
