"""The Server's moving parts, one small module per loop.

`fetcher` takes tasks from Redis, `processor` runs them on worker coroutines, `finisher`
records their outcomes in batches, `forwarder` moves due scheduled and retry tasks to
pending, and `heartbeat` keeps the leases of held tasks alive.  `tickr.server.Server`
wires them together and owns the order in which they start and stop.
"""
