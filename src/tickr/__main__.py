"""``python -m tickr``: the ``tickr`` command line."""

from tickr.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
