"""Print `.env` as make statements: `NAME ?= value` and `export NAME`, one per `|NL|`.

The Makefile evaluates the output, so every target and its commands see `.env` (when
there is one) and the environment still wins, as in the `persona` CLI (pydantic-settings).
Standard library only: it runs with the machine's Python before any env exists.
Understood: `NAME=value` lines, an optional `export `, `#` comment lines, one pair of
quotes around a value, an unquoted value's ` # comment`. `$` and `#` stay literal.

Usage: python scripts/dotenv_make.py [PATH]   (default: .env)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

# Make's own variables: never taken from .env.
_RESERVED = ("SHELL", "MAKEFLAGS", "MAKEFILES", "MAKELEVEL", "MFLAGS", "MAKECMDGOALS")
SEPARATOR = "|NL|"


def values(text: str) -> Iterator[tuple[str, str]]:
    """The (name, value) pairs of a `.env` text, in order."""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier() or line.startswith("#"):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        yield name, value


def make_statements(text: str) -> list[str]:
    """Make statements that set each variable unless already set, and export it."""
    out = []
    for name, value in values(text):
        if name in _RESERVED:
            continue
        escaped = value.replace("$", "$$").replace("#", "\\#")
        out += [f"{name} ?= {escaped}", f"export {name}"]
    return out


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ".env")
    if path.is_file():
        print(SEPARATOR.join(make_statements(path.read_text(encoding="utf-8"))))
