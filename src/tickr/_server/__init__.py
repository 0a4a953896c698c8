"""The Server's moving parts, one small module per loop or concern.

- `context` is what every part shares (settings, the broker, the held jobs); `part`
  the start/stop protocol every part follows; `supervisor` restarts parts that end;
- `fetcher` takes tasks from Redis; `handoff` registers this idle server as a waiter;
  `inbox` receives the tasks handed to it; `listener` routes the queues' events;
- `processor` runs them on worker coroutines, each a `job.Job`;
- `finisher` records their outcomes in batches;
- `forwarder` moves due scheduled and retry tasks to pending;
- `heartbeat` recovers expired leases and refreshes the registry; `lease_keeper` renews
  this server's leases from a thread;
- `burst` stops a burst-mode server once its queues are empty; `redis_check` checks
  Redis' version and settings at start; `failures` logs a loop's failed round.

`tickr.server.Server` builds them from one context and owns the order in which they
start and stop; `tickr._service` is the lifecycle it shares with the Scheduler.
"""
