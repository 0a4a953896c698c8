"""The Redis key layout: the only place where key names are built.

Every per-queue key carries the hash tag ``{<namespace>:<queue>}`` so that all keys of one
queue live in one cluster slot and each Lua script touches one slot.  Namespace-wide keys
(the queue registry, the server registry, the audit log) carry the tag ``{<namespace>}``;
``<ns>:{<ns>}:audit`` is a stream of the changes made through the HTTP app, capped.

Per queue, with ``P = "<ns>:{<ns>:<queue>}:"``:

=======================  ======  ==========================================================
key                      type    contents
=======================  ======  ==========================================================
P t:<id>                 hash    one task that is not pending: msg (msgpack, immutable),
                                 state, pri, mr (max retries), retried, owner, dq (lease
                                 expiry of the dequeue that took it), due, err, failed_at,
                                 done (completion time), result, uk (unique digest), tok
                                 (token of the call that chose the id), w (a client
                                 waits), cancel
P pend:meta              hash    the pending store: n (records), k (hashing level), s
                                 (split pointer); see lua/lib/pending_store.lua
P pend:b:<n>             hash    bucket n of the pending records: id -> cmsgpack {msg, pri,
                                 mr, field, value, ...}, about 16 per bucket (listpack)
P pend:l:<priority>      list    ids of the tasks pending at one priority, in run order
P pend:pri               zset    the priorities whose list exists (score -priority)
P pend:gone              hash    id -> list entries left behind by removals, to skip
P pend:n:<lane>:l:<pri>  list    a lane's run order, as pend:l:<pri> (and pend:n:<lane>:pri)
P pend:lanes, pend:turn  zset    while some lane has tasks: lane ('' for the tasks without
                         string  one) -> its turn, and the turn counter (round-robin)
P pending, P seq         zset    0.1's pending set ("<12 hex digits of sequence><id>") and
                         string  its counter, read only to migrate them (migrate.lua)
P active                 zset    task id -> lease expiry (ms)
P scheduled              zset    task id -> due time (ms)
P retry                  zset    task id -> due time (ms)
P archived               zset    task id -> archive time (ms)
P completed              zset    task id -> expiry of the kept result (ms)
P paused                 string  present while the queue is paused
P limits                 hash    the queue's flow control: rate, period (ms), burst,
                                 rate_lane, conc, conc_lane (absent: no limit)
P tat                    string  the rate limiter's theoretical arrival time (ms)
P capwait                zset    servers held by the concurrency limit (id -> when the
                                 wait lapses: the lease expiry of its dequeue);
                                 a finished task wakes one with 'w<id>' on P events
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
P minutes:<hour>         hash    per-minute counters of one hour (hours since the epoch):
                                 p<minute> processed, f<minute> failed (minute 0-59 of the
                                 hour), kept until 25 hours after the hour began
P events                 pubsub  "p" pending work, "s" earlier due time, "c<id>" cancel,
                                 "l" the limits changed, "w<server>" a slot for that server,
                                 "n<server> <n>" that server's new concurrency
P done                   pubsub  id of a finished task somebody waits on
=======================  ======  ==========================================================
"""

from __future__ import annotations

from typing import Final

__all__ = ["HANDED_WINDOW_LEASES", "INBOX_TTL_MS", "NamespaceKeys", "QueueKeys", "pending_hash"]


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
        "capwait",
        "completed",
        "done_channel",
        "events_channel",
        "failed",
        "idle",
        "inbox_prefix",
        "legacy_pending",
        "legacy_seq",
        "limits",
        "namespace",
        "paused",
        "pending",
        "pending_prefix",
        "prefix",
        "processed",
        "queue",
        "retry",
        "scheduled",
        "task_prefix",
        "tat",
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
        self.pending_prefix = prefix + "pend:"
        self.pending = self.pending_prefix + "meta"
        self.legacy_pending = prefix + "pending"
        self.legacy_seq = prefix + "seq"
        self.active = prefix + "active"
        self.scheduled = prefix + "scheduled"
        self.retry = prefix + "retry"
        self.archived = prefix + "archived"
        self.completed = prefix + "completed"
        self.paused = prefix + "paused"
        self.limits = prefix + "limits"  # lib/enqueue_task.lua derives it from `paused`
        self.tat = prefix + "tat"
        self.capwait = prefix + "capwait"
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

    def pending_bucket(self, index: int) -> str:
        """Key of one bucket of pending records (see pending_hash)."""
        return f"{self.pending_prefix}b:{index}"

    def pending_list(self, priority: int) -> str:
        """Key of the run-order list of the tasks pending at one priority."""
        return f"{self.pending_prefix}l:{priority}"

    @property
    def pending_priorities(self) -> str:
        """Key of the sorted set of priorities that have a pending list."""
        return self.pending_prefix + "pri"

    @property
    def pending_lanes(self) -> str:
        """Key of the sorted set of the lanes with pending tasks, by turn."""
        return self.pending_prefix + "lanes"

    @property
    def pending_gone(self) -> str:
        """Key of the hash counting list entries left behind by removals."""
        return self.pending_prefix + "gone"

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

    def minutes(self, hour: int) -> str:
        """Per-minute counters of one hour; `hour` counts hours since the epoch (UTC)."""
        return f"{self.prefix}minutes:{hour}"


_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")


def pending_hash(task_id: str) -> int:
    """The 32-bit hash that places a task's pending record (lua/lib/pending_store.lua id_hash).

    The last 8 hex digits of an id ending in them (random in a uuid4 hex id), else a
    multiplicative hash of its bytes.
    """
    data = task_id.encode()
    if len(data) >= 8 and all(byte in _HEX_DIGITS for byte in data[-8:]):
        return int(data[-8:], 16)
    value = 0
    for byte in data:
        value = (value * 31 + byte) % 4294967296
    return value


def pending_bucket_index(task_id: str, level: int, split: int) -> int:
    """The bucket of a task's pending record under linear hashing at `level`, `split`."""
    value = pending_hash(task_id)
    bucket = value % (1 << level)
    if bucket < split:
        bucket = value % (2 << level)
    return bucket


class NamespaceKeys:
    """Key names shared by all queues of a namespace."""

    __slots__ = ("audit", "namespace", "prefix", "queues", "schedulers", "servers")

    def __init__(self, namespace: str) -> None:
        prefix = f"{namespace}:{{{namespace}}}:"
        self.namespace = namespace
        self.prefix = prefix
        self.queues = prefix + "queues"
        self.servers = prefix + "servers"
        self.schedulers = prefix + "schedulers"
        self.audit = prefix + "audit"

    def server(self, server_id: str) -> str:
        """Key of one server's registry record."""
        return f"{self.prefix}server:{server_id}"

    def scheduler(self, scheduler_id: str) -> str:
        """Key of one scheduler's registry record (with its entries)."""
        return f"{self.prefix}scheduler:{scheduler_id}"
