"""`persona monitor` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def monitor() -> None:
    """Not built yet."""
    raise typer.Exit(code=3)
