"""How the server's loops report a failed round before they retry it."""

from __future__ import annotations

import logging

from tickr.errors import RedisUnavailable

__all__ = ["log_failure"]


def log_failure(logger: logging.Logger, what: str, exc: Exception, retry_in: float) -> None:
    """Log that `what` failed and will be retried.

    A warning when Redis is unavailable (it happens), an error with the traceback
    otherwise (it should not).
    """
    if isinstance(exc, RedisUnavailable):
        logger.warning("could not %s (%s); retrying in %.2fs", what, exc, retry_in)
    else:
        logger.error("could not %s; retrying in %.2fs", what, retry_in, exc_info=exc)
