"""The handlers that examples/http_api.sh serves with ``tickr worker http_handlers:mux``."""

from __future__ import annotations

import tickr

mux = tickr.ServeMux()


@mux.handle("greet")
async def greet(task: tickr.Task) -> dict[str, str]:
    """Answer a greeting for the name in the payload."""
    return {"greeting": f"Hello, {task.payload['name']}!"}
