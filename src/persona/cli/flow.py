"""`persona run-month` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def run_month() -> None:
    """Not built yet."""
    raise typer.Exit(code=3)
