"""A Tickr Scheduler in its own process, for tests that need real processes.

    python -m tests.helpers.scheduler_process URL NAMESPACE SPEC ENTRY_ID

Runs `Scheduler.run()` with one entry enqueueing type "tick" into queue "ticks"; it
logs "running 1 entries" to stderr once it schedules, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import sys

import tickr


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "namespace", "spec", "entry_id"):
        parser.add_argument(name)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    scheduler = tickr.Scheduler(args.url, namespace=args.namespace, heartbeat_interval=1)
    scheduler.register(args.spec, "tick", entry_id=args.entry_id, queue="ticks")
    scheduler.run()


if __name__ == "__main__":
    main()
