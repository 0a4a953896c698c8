"""`TaskSpec`: a task to enqueue with `Client.enqueue_many` (also `tickr.TaskSpec`)."""

from tickr._options import TaskSpec

__all__ = ["TaskSpec"]
