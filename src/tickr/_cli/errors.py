"""The errors the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "CLIError", "UsageError"]

EXIT_ERROR = 1
"""Exit code of an operational error (unknown queue or task, Redis down, ...)."""

EXIT_USAGE = 2
"""Exit code of a usage error, as argparse uses it."""


class CLIError(Exception):
    """An error to print as ``error: <message>`` before exiting with `code`."""

    code = EXIT_ERROR


class UsageError(CLIError):
    """The command line itself is wrong (arguments that do not go together, ...)."""

    code = EXIT_USAGE
