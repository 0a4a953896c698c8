"""The ``tickr`` command line: run workers, and inspect and steer queues and tasks.

    tickr worker app.tasks:mux [--concurrency N] [--queue NAME=WEIGHT ...] [--burst]
    tickr web [--host H] [--port P] [--token-file F] [--read-only] [--root-path /prefix]
    tickr stats [--watch [SECONDS]]
    tickr queue ls | inspect Q | history Q | pause Q | unpause Q | rm Q [--force]
    tickr queue limit Q [--rate N [--period S] [--burst B]] [--concurrency N] [--clear-rate]
    tickr task ls Q --state S | get ID | cancel ID | delete ID | run ID | archive ID
    tickr server ls
    tickr cron ls | history ENTRY

Every command takes ``--url`` and ``--namespace`` (before or after the command), and
every read command ``--json``.  See docs/cli.md.  Errors print one line on stderr,
``error: <message>``, and exit with 1 (2 for usage errors, as argparse does).

``import tickr`` does not import this module; the console script and ``python -m tickr``
call `main`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tickr._broker.connection import resolve_url
from tickr._cli.errors import EXIT_ERROR, EXIT_USAGE, CLIError
from tickr._cli.output import masked_url
from tickr._cli.parser import build_parser
from tickr.errors import RedisUnavailable, TickrError

__all__ = ["main"]

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), except for ``stats --watch`` which exits 0."""


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tickr`` command line with `argv` (default: sys.argv[1:]).

    Returns:
        The exit code: 0 on success, 1 for a runtime error (unknown queue or task, a
        task in the wrong state, Redis down, an application that cannot be imported or
        exits while imported), 2 for a usage error (a bad option or argument, checked
        before anything runs), 130 after Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.run(args)
    except CLIError as exc:
        _error(str(exc))
        return exc.code
    except RedisUnavailable as exc:
        _error(f"{exc} (url: {masked_url(resolve_url(args.url))})")
        return EXIT_ERROR
    except TickrError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except (ValueError, TypeError) as exc:
        _error(str(exc))  # the arguments were checked already: a runtime error
        return EXIT_ERROR
    except KeyboardInterrupt:
        if getattr(args, "watch", None) is not None:
            return 0
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`tickr ... | head`): not an error
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _error(f"unexpected {type(exc).__name__}: {exc}")
        return EXIT_ERROR
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
