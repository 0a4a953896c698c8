"""The modules behind `tickr.cli`: parser, output formatting, commands and the worker.

Nothing here is imported by ``import tickr``; only the ``tickr`` command loads it.
"""
