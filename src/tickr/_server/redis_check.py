"""The start-up check of how Redis is configured."""

from __future__ import annotations

import logging

from tickr._broker import Broker

__all__ = ["warn_about_redis"]

logger = logging.getLogger("tickr.server")


async def warn_about_redis(broker: Broker) -> None:
    """Warn when Redis may evict Tickr's keys or lose them on a restart."""
    try:
        settings = await broker.redis_settings()
    except Exception as exc:  # noqa: BLE001 - a warning is not worth failing for
        logger.info("could not read Redis' settings (%s)", exc)
        return
    policy = settings["maxmemory_policy"]
    if policy not in ("noeviction", "unknown"):
        logger.warning(
            "Redis' maxmemory-policy is %s: when memory runs out Redis may evict Tickr's "
            "keys and lose tasks; use noeviction",
            policy,
        )
    if settings["aof_enabled"] != "0":
        return
    snapshots = settings["save"]
    if snapshots in ("", '""'):
        logger.warning(
            "Redis persistence is off (no AOF, no snapshots): a Redis restart loses every "
            "task; set appendonly yes"
        )
    else:
        logger.warning(
            "Redis' append-only file is off: a Redis crash loses what was written since "
            "the last snapshot (save %s); set appendonly yes",
            snapshots,
        )
