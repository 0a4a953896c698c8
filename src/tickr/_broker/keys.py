"""The Redis key layout: the only place where key names are built.

Every per-queue key carries the hash tag ``{<namespace>:<queue>}`` so that all keys of one
queue live in one cluster slot and each Lua script touches one slot.  Namespace-wide keys
(the queue registry, the server registry) carry the tag ``{<namespace>}``.

Per queue, with ``P = "<ns>:{<ns>:<queue>}:"``:

=======================  ======  ==========================================================
key                      type    contents
=======================  ======  ==========================================================
P t:<id>                 hash    one task: msg (msgpack, immutable), state, pri, mr (max
                                 retries), pm (pending member), retried, owner, dq (lease
                                 expiry of the dequeue that took it), due, err, failed_at,
                                 done (completion time), result, uk (unique digest), tok
                                 (token of the call that chose the id), w (a client
                                 waits), cancel
P pending                zset    score -priority, member <12 hex seq><id>: strict priority,
                                 FIFO among equal priority (members sort by seq)
P active                 zset    task id -> lease expiry (ms)
P scheduled              zset    task id -> due time (ms)
P retry                  zset    task id -> due time (ms)
P archived               zset    task id -> archive time (ms)
P completed              zset    task id -> expiry of the kept result (ms)
P seq                    string  counter giving pending members their FIFO order
P paused                 string  present while the queue is paused
P idle                   string  present while some server found the queue empty
P waiters                zset    idle servers ("<lease ms> <server id>" -> registration
                                 expiry ms) that take a new task directly (hand-off)
P inbox:<server>         list    tasks handed to that server ("<id> <msg>"), read with BLPOP
P inbox:<server>:handed  zset    recent hand-offs to that server (id -> when), renewed by
                                 its lease thread while its loop is blocked
P u:<digest>             string  unique lock: id of the live task holding it
P cron:<entry>           string  last tick (ms) of a periodic task enqueued here
P cron:<entry>:history    list    recent ticks of that entry (msgpack events), capped
P processed / failed     string  all-time counters
P processed:<day>        string  daily counters (UTC day, kept 90 days)
P events                 pubsub  "p" pending work, "s" earlier due time, "c<id>" cancel
P done                   pubsub  id of a finished task somebody waits on
=======================  ======  ==========================================================
"""

from __future__ import annotations

from typing import Final

__all__ = ["HANDED_WINDOW_LEASES", "INBOX_TTL_MS", "NamespaceKeys", "QueueKeys"]

PENDING_SEQ_WIDTH: Final = 12
"""Hex digits of the sequence prefix of a pending member (see pending above)."""

INBOX_TTL_MS: Final = 3_600_000
"""Lifetime of an inbox and of its handed set, from their last write (scripts get it as
an argument)."""

HANDED_WINDOW_LEASES: Final = 10
"""A handed set keeps, and the lease thread renews, the hand-offs of the last this many
lease lengths (scripts get it as an argument)."""


class QueueKeys:
    """Key names of one queue."""

    __slots__ = (
        "active",
        "archived",
        "completed",
        "done_channel",
        "events_channel",
        "failed",
        "idle",
        "inbox_prefix",
        "namespace",
        "paused",
        "pending",
        "prefix",
        "processed",
        "queue",
        "retry",
        "scheduled",
        "seq",
        "task_prefix",
        "unique_prefix",
        "waiters",
    )

    def __init__(self, namespace: str, queue: str) -> None:
        prefix = f"{namespace}:{{{namespace}:{queue}}}:"
        self.namespace = namespace
        self.queue = queue
        self.prefix = prefix
        self.task_prefix = prefix + "t:"
        self.unique_prefix = prefix + "u:"
        self.pending = prefix + "pending"
        self.active = prefix + "active"
        self.scheduled = prefix + "scheduled"
        self.retry = prefix + "retry"
        self.archived = prefix + "archived"
        self.completed = prefix + "completed"
        self.seq = prefix + "seq"
        self.paused = prefix + "paused"
        self.idle = prefix + "idle"
        self.waiters = prefix + "waiters"
        self.inbox_prefix = prefix + "inbox:"
        self.processed = prefix + "processed"
        self.failed = prefix + "failed"
        self.events_channel = prefix + "events"
        self.done_channel = prefix + "done"

    def task(self, task_id: str) -> str:
        """Key of one task's hash."""
        return self.task_prefix + task_id

    def inbox(self, server_id: str) -> str:
        """Key of the list of tasks handed to one idle server."""
        return self.inbox_prefix + server_id

    def handed(self, server_id: str) -> str:
        """Key of the sorted set of recent hand-offs to one server (id -> when).

        lib/enqueue_task.lua derives it from the inbox key the same way.
        """
        return self.inbox(server_id) + ":handed"

    def unique(self, digest: str) -> str:
        """Key of one unique lock."""
        return self.unique_prefix + digest

    def cron_last(self, entry_id: str) -> str:
        """Last tick (ms) of a periodic task that enqueues into this queue."""
        return f"{self.prefix}cron:{entry_id}"

    def cron_history(self, entry_id: str) -> str:
        """Recent ticks of a periodic task (a capped list)."""
        return f"{self.prefix}cron:{entry_id}:history"

    def processed_on(self, day: str) -> str:
        """Daily processed counter; `day` is an ISO date (UTC)."""
        return f"{self.processed}:{day}"

    def failed_on(self, day: str) -> str:
        """Daily failed counter; `day` is an ISO date (UTC)."""
        return f"{self.failed}:{day}"


class NamespaceKeys:
    """Key names shared by all queues of a namespace."""

    __slots__ = ("namespace", "prefix", "queues", "schedulers", "servers")

    def __init__(self, namespace: str) -> None:
        prefix = f"{namespace}:{{{namespace}}}:"
        self.namespace = namespace
        self.prefix = prefix
        self.queues = prefix + "queues"
        self.servers = prefix + "servers"
        self.schedulers = prefix + "schedulers"

    def server(self, server_id: str) -> str:
        """Key of one server's registry record."""
        return f"{self.prefix}server:{server_id}"

    def scheduler(self, scheduler_id: str) -> str:
        """Key of one scheduler's registry record (with its entries)."""
        return f"{self.prefix}scheduler:{scheduler_id}"
