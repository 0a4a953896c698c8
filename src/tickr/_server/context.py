"""`ServerContext`: what every part of a serving server shares, made once by `serve()`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tickr._broker import Broker
from tickr._server.job import Job

__all__ = ["HeldJobs", "ServerContext"]

HeldJobs = dict[tuple[str, str], Job]
"""(queue, task id) -> every job from its fetch until Redis has recorded its outcome."""


@dataclass(frozen=True, slots=True)
class ServerContext:
    """The settings and shared state of one `serve()` call, given to every part."""

    broker: Broker
    owner: str
    """This server's id: the holder of its leases."""
    queues: Mapping[str, int]
    """Queue name -> weight, in the configured order."""
    heaviest_first: tuple[str, ...]
    """The queue names, heaviest first (ties by name)."""
    lease_ms: int
    interval: float
    """Seconds between heartbeats (and lease renewals)."""
    archive_max_size: int
    archive_max_age_ms: int
    waiter: str
    """How this server is registered as a waiter (see handoff.py)."""
    waiter_ttl_ms: int
    """How long a registration as a waiter lasts unless a heartbeat extends it."""
    held: HeldJobs
    """The jobs this server holds: the processor adds them, the finisher removes them
    once recorded, the heartbeat and the lease keeper renew them."""

    @property
    def names(self) -> list[str]:
        """The queue names, in the configured order."""
        return list(self.queues)
