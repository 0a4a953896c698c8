"""The `extra` fields of every log record about one task.

Records about a task carry ``task_id``, ``task_type`` and ``queue`` as attributes, so that
a JSON formatter can index them (``record.task_id``); the type is "" where the server has
not decoded the task (yet).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["task_fields"]


def task_fields(task_id: str, queue: str, task_type: str = "") -> Mapping[str, str]:
    """The `extra` of a log record about one task."""
    return {"task_id": task_id, "task_type": task_type, "queue": queue}
