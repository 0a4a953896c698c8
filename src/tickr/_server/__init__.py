"""The Server's moving parts, one small module per loop or concern.

- `fetcher` takes tasks from Redis; `inbox` receives tasks handed to this idle server;
- `processor` runs them on worker coroutines, each a `job.Job`;
- `finisher` records their outcomes in batches;
- `forwarder` moves due scheduled and retry tasks to pending;
- `heartbeat` recovers expired leases and refreshes the registry; `lease_keeper` renews
  this server's leases from a thread;
- `burst` stops a burst-mode server once its queues are empty; `redis_check` checks
  Redis' version and settings at start; `failures` logs a loop's failed round.

`tickr.server.Server` wires them together and owns the order in which they start and stop.
"""
