"""What the HTTP API's tests share: tokens, and an app served over a real socket."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from tickr.web import Token

ADMIN = "admin-secret-0123456789"
SUBMIT = "submit-secret-0123456789"
EMAIL_READER = "email-reader-0123456789"
TOKENS = [
    Token("ops", secret=ADMIN, scopes=["admin"]),
    Token("bot", secret=SUBMIT, scopes=["tasks:submit", "tasks:read"]),
    Token("mail", secret=EMAIL_READER, scopes=["tasks:read", "payload:read"], queues=["email*"]),
]


class Running:
    """An app served by uvicorn from a thread of its own, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return f"http://127.0.0.1:{self.port}"
            threading.Event().wait(0.01)
        raise AssertionError("uvicorn did not start")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
