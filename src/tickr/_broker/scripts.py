"""Loading of the Lua scripts kept as `.lua` files next to this module.

A line ``--@include name`` in a script is replaced by ``lua/lib/name.lua``, so that shared
fragments are written once.  Scripts are sent with EVALSHA; the SHA1 is computed here, and
a script missing from Redis' cache (after a restart or SCRIPT FLUSH) is loaded on demand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["Script", "every_script", "load_script"]

_INCLUDE = re.compile(r"^--@include\s+(\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script's source and the SHA1 that Redis knows it by."""

    name: str
    source: str
    sha: str


def _read(relative_path: str) -> str:
    return (resources.files(__package__) / "lua" / relative_path).read_text(encoding="utf-8")


def _expand(source: str) -> str:
    return _INCLUDE.sub(lambda match: _read(f"lib/{match.group(1)}.lua"), source)


@cache
def load_script(name: str) -> Script:
    """Read `lua/<name>.lua`, with its includes expanded.

    Raises:
        FileNotFoundError: If there is no such script.
    """
    source = _expand(_read(f"{name}.lua"))
    return Script(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


def every_script() -> list[Script]:
    """Every script of `lua/` (not the fragments of `lua/lib/`), sorted by name."""
    folder = resources.files(__package__) / "lua"
    names = sorted(item.name[:-4] for item in folder.iterdir() if item.name.endswith(".lua"))
    return [load_script(name) for name in names]
