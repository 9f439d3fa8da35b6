"""`persona serve` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def serve() -> None:
    """Not built yet."""
    raise typer.Exit(code=3)
