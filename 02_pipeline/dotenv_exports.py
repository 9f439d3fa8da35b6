"""Print `export NAME=value` lines for the `.env` variables the environment lacks.

`start_mage.sh` evaluates the output: `.env` fills in only what the environment does not
already set (as pydantic-settings does), parsed by python-dotenv like the `persona` CLI.
Runs with the app env's Python (python-dotenv is in requirements/app.lock; the Mage env
does not need it).

Usage: python 02_pipeline/dotenv_exports.py [PATH]   (default: .env)
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from dotenv import dotenv_values


def exports(path: Path, environ: dict[str, str]) -> list[str]:
    """The shell `export` lines for the variables of `path` missing from `environ`."""
    if not path.is_file():
        return []
    values = dotenv_values(path, interpolate=False, encoding="utf-8")
    return [
        f"export {name}={shlex.quote(value)}"
        for name, value in values.items()
        if value is not None and name.isidentifier() and name not in environ
    ]


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".env")
    print("\n".join(exports(target, dict(os.environ))))
