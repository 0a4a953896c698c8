"""The broker: every read and write of Tickr's state in Redis.

`Broker` joins three parts, split by who calls them: `calls.Calls`, the plumbing
(connections, timeouts, retries, script loading, error mapping); `serving.Serving`, the
path of clients, servers and schedulers; `admin.Admin`, the operator's path (the
Inspector and the CLI).  The values crossing its boundary are in types.py.

Each method is one atomic step: one Lua script, one pipeline of independent reads, or
one command.  Methods speak in ids, bytes, ints and milliseconds; decoding into values
is the caller's job.  Connection failures, and error replies that mean "not now"
(LOADING, BUSY, OOM, READONLY...), surface as `tickr.errors.RedisUnavailable` after a
few quick retries; any other error reply as `tickr.errors.TickrError`.

A call whose connection broke is sent again (a few times, with a short backoff), even
though it may have run already.  Every script tolerates that: an enqueue finds the
tasks it stored itself (by their fresh ids, or the call's token) and counts them done,
finish/renew/recover check the lease owner and the state, forward and unpause are
idempotent, and a dequeue is never re-sent: the fetcher finds what a dequeue with a
lost reply took with `reclaim`.  Only cancel can answer differently the second time: a
task it deleted is gone, so a re-sent cancel reports that there was nothing to cancel.
"""

from __future__ import annotations

from tickr._broker.admin import Admin
from tickr._broker.serving import Serving

__all__ = ["Broker"]


class Broker(Serving, Admin):
    """Tickr's state in one Redis namespace: the serving path and the operator path.

    Args:
        namespace: Prefix of every key.
        executor: How commands reach Redis (see executor.py).
    """
