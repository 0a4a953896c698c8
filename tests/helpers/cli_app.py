"""An application for the `tickr worker` tests: a ServeMux and a configured Server.

    python -m tickr worker tests.helpers.cli_app:mux --url URL --namespace NS
    python -m tickr worker tests.helpers.cli_app:server --url URL --namespace NS --burst

Handlers: "echo" returns its payload; "sleep" sleeps `payload` seconds; "fail" raises.
`server` serves queue "cli" with concurrency 4; its handler is `mux`, the module's only
ServeMux.
"""

from __future__ import annotations

import asyncio
from typing import Any

import tickr

mux = tickr.ServeMux()


@mux.handle("echo")
async def echo(task: tickr.Task) -> Any:
    return task.payload


@mux.handle("sleep")
async def sleep(task: tickr.Task) -> None:
    await asyncio.sleep(float(task.payload))


@mux.handle("fail")
async def fail(task: tickr.Task) -> None:
    raise RuntimeError(f"failing on purpose: {task.payload!r}")


async def handle_anything(task: tickr.Task) -> Any:
    """A single async function can be the worker target too."""
    return task.payload


server = tickr.Server(concurrency=4, queues={"cli": 1}, shutdown_timeout=2)

not_a_handler = 42
