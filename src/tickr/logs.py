"""Log records that name their task, for formatters that index fields (JSON logs).

Tickr's own records about a task carry ``task_id``, ``task_type`` and ``queue`` as record
attributes already.  `TaskLogFilter` gives the same attributes to the records that
handlers (and the libraries they call) log while a task runs::

    handler = logging.StreamHandler()
    handler.addFilter(tickr.logs.TaskLogFilter())
    handler.setFormatter(JsonFormatter())   # any formatter that reads record attributes
    logging.getLogger().addHandler(handler)

Outside a handler the attributes are left unset, unless `always` is given, which sets
them to "" so that a format string may name them (``%(task_id)s``).
"""

from __future__ import annotations

import logging

from tickr.task import current_task

__all__ = ["TASK_FIELDS", "TaskLogFilter", "current_task"]

TASK_FIELDS = ("task_id", "task_type", "queue")
"""The record attributes that name a task."""


class TaskLogFilter(logging.Filter):
    """Adds the running task's id, type and queue to every record it sees.

    Attach it to a logging handler (not a logger, whose filters do not see the records
    of its children).  Attributes a record has already (given in `extra`) are kept.

    Args:
        always: Set the attributes to "" on records logged outside a handler.
    """

    def __init__(self, *, always: bool = False) -> None:
        super().__init__()
        self.always = always

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields; never drops a record."""
        task = current_task()
        if task is not None:
            values = (task.id, task.type, task.queue)
        elif self.always:
            values = ("", "", "")
        else:
            return True
        for name, value in zip(TASK_FIELDS, values, strict=True):
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
