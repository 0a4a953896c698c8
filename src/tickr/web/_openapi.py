"""The OpenAPI 3.1 document of the HTTP API, built from the app's route table.

Each `Endpoint` says what the document needs (summary, scope, query parameters, request
and answer schemas, status codes); `document` turns the table into OpenAPI, so a route
cannot exist without its description.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from tickr.values import TASK_STATES

__all__ = ["SCHEMAS", "Endpoint", "Parameter", "document"]

_PATH_PARAMETER: Final = re.compile(r"{(\w+)(?::\w+)?}")

_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
_ANY_JSON: Final = {
    "description": "Any JSON; bytes, datetimes and maps with keys that are not strings "
    'are tagged: {"$bytes": base64}, {"$datetime": ISO 8601}, {"$map": [[k, v], ...]}.'
}

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Problem": {
        "type": "object",
        "description": "An RFC 9457 problem document.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "last_error": {"type": ["string", "null"]},
            "live_task_id": {"type": "string"},
        },
    },
    "Submission": {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "minLength": 1},
            "payload": _ANY_JSON,
            "priority": {"type": "integer"},
            "delay": {"type": "number", "minimum": 0, "description": "Seconds."},
            "at": {"type": "string", "format": "date-time"},
            "max_retry": {"type": "integer", "minimum": 0},
            "timeout": {"type": ["number", "null"], "description": "Seconds per attempt."},
            "deadline": {"type": "string", "format": "date-time"},
            "task_id": {"type": "string"},
            "unique": {"type": "number", "description": "Seconds an equal task is refused."},
            "retention": {"type": "number", "minimum": 0},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "lane": {"type": "string", "description": "Lanes are served round-robin."},
        },
    },
    "Task": {
        "type": "object",
        "required": ["id", "type", "queue", "state"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "queue": {"type": "string"},
            "state": {"enum": list(TASK_STATES)},
            "priority": {"type": "integer"},
            "max_retry": {"type": "integer"},
            "retried": {"type": "integer"},
            "last_error": {"type": ["string", "null"]},
            "timeout": {"type": ["number", "null"]},
            "deadline": _TIME,
            "next_process_at": _TIME,
            "completed_at": _TIME,
            "enqueued_at": _TIME,
            "last_failed_at": _TIME,
            "retention": {"type": "number"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "lane": {"type": ["string", "null"]},
            "payload": {**_ANY_JSON, "description": "Only for a token with payload:read."},
        },
    },
    "TaskPage": {
        "type": "object",
        "required": ["tasks", "state", "page", "page_size", "total"],
        "properties": {
            "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
            "state": {"enum": list(TASK_STATES)},
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "total": {"type": "integer", "description": "Tasks in that state in all."},
        },
    },
    "Result": {
        "type": "object",
        "properties": {"result": _ANY_JSON, "state": {"enum": list(TASK_STATES)}},
    },
    "Done": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "queue": {"type": "string"},
            "done": {"type": "string"},
            "paused": {"type": "boolean"},
        },
    },
    "Queue": {
        "type": "object",
        "required": ["queue"],
        "properties": {
            "queue": {"type": "string"},
            **{state: {"type": "integer"} for state in TASK_STATES},
            "processed": {"type": "integer", "description": "Today (UTC)."},
            "failed": {"type": "integer", "description": "Today (UTC)."},
            "paused": {"type": "boolean"},
            "latency": {"type": "number", "description": "Seconds the next task waited."},
            "size": {"type": "integer"},
            "rate_limit": {
                "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/RateLimitBody"}]
            },
            "concurrency_limit": {"type": ["integer", "null"]},
            "concurrency_per_lane": {"type": "boolean"},
            "lanes": {"type": "integer", "description": "Lanes with pending tasks."},
        },
    },
    "RateLimitBody": {
        "type": "object",
        "required": ["limit"],
        "additionalProperties": False,
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "description": "Starts per period."},
            "period": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 1.0,
                "description": "Seconds.",
            },
            "burst": {"type": "integer", "minimum": 1, "default": 1},
            "per_lane": {"type": "boolean", "default": False},
        },
    },
    "ConcurrencyLimitBody": {
        "type": "object",
        "required": ["limit"],
        "additionalProperties": False,
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "description": "Active tasks at most."},
            "per_lane": {"type": "boolean", "default": False},
        },
    },
    "Queues": {
        "type": "object",
        "properties": {
            "queues": {"type": "array", "items": {"$ref": "#/components/schemas/Queue"}}
        },
    },
    "Records": {
        "type": "object",
        "description": "A list of records under one name (history, servers or entries).",
        "additionalProperties": {"type": "array", "items": {"type": "object"}},
    },
    "AuditPage": {
        "type": "object",
        "required": ["entries"],
        "properties": {
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "time": {"type": "string", "format": "date-time"},
                        "actor": {"type": "string"},
                        "address": {"type": "string"},
                        "action": {"type": "string"},
                        "queue": {"type": ["string", "null"]},
                        "task_id": {"type": ["string", "null"]},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                },
            },
            "next": {"type": ["string", "null"], "description": "`before` of the next page."},
        },
    },
    "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
}
"""The component schemas that endpoints name."""

_COMMON_PROBLEMS: Final = {
    401: "No token, or an unknown one.",
    403: "The token lacks the scope or the queue.",
    429: "Too many unknown tokens from this address; see Retry-After.",
    503: "Redis cannot be reached.",
}


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query parameter: its name, JSON schema and meaning."""

    name: str
    schema: Mapping[str, Any]
    description: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route of the app, with what its OpenAPI operation says.

    Attributes:
        method, path: The route (Starlette's path syntax).
        handler: The function answering it.
        summary: A line on what it does.
        scope: The token scope it needs; None when it needs no token.
        answers: Status code -> (description, component schema or None) of its answers.
        body: The component schema of the request body, if it takes one.
        query: Its query parameters.
        audit: The audit action it records, for a change; None for a read.
        media_type: The media type of its successful answers.
    """

    method: str
    path: str
    handler: Callable[[Request], Awaitable[Response]]
    summary: str
    scope: str | None
    answers: Mapping[int, tuple[str, str | None]]
    body: str | None = None
    query: tuple[Parameter, ...] = ()
    audit: str | None = None
    media_type: str = "application/json"
    headers: tuple[Parameter, ...] = field(default=())

    @property
    def operation_id(self) -> str:
        """A name for the operation, from its method and path."""
        words = re.sub(r"[^a-z0-9]+", "_", _PATH_PARAMETER.sub(r"\1", self.path).lower())
        return f"{self.method.lower()}{words.rstrip('_')}"


def _response(endpoint: Endpoint, status: int, description: str, schema: str | None) -> Any:
    if status >= 400:
        media, shape = "application/problem+json", {"$ref": "#/components/schemas/Problem"}
    elif schema is None:
        return {"description": description}
    else:
        media, shape = endpoint.media_type, {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {media: {"schema": shape}}}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(endpoint.path)
    ]
    for where, listed in (("query", endpoint.query), ("header", endpoint.headers)):
        parameters += [
            {"name": p.name, "in": where, "schema": dict(p.schema), "description": p.description}
            for p in listed
        ]
    answers = dict(endpoint.answers)
    if endpoint.scope is not None:
        answers = {**answers, **{code: (text, None) for code, text in _COMMON_PROBLEMS.items()}}
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "responses": {
            str(code): _response(endpoint, code, text, schema)
            for code, (text, schema) in sorted(answers.items())
        },
    }
    if endpoint.scope is None:
        operation["security"] = []
    else:
        operation["description"] = f"Needs a token with the `{endpoint.scope}` scope."
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{endpoint.body}"}}
            },
        }
    return operation


def document(endpoints: Iterable[Endpoint], *, version: str, root_path: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of `endpoints`, served under `root_path`."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = _PATH_PARAMETER.sub(r"{\1}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tickr HTTP API",
            "version": version,
            "description": "Submit, read and steer Tickr tasks and queues; see docs/http-api.md.",
        },
        "servers": [{"url": root_path or "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
