"""`persona label`: label a month with the champion and store the labels with lineage."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from persona.cli._common import JSON_OPTION, console, emit, errors_to_exit, settings
from persona.cli._progress import progress
from persona.months import parse_month


def label(
    month: str = typer.Option(..., "--month", help="Month to label, YYYY-MM."),
    via_api: str = typer.Option(
        None, "--via-api", help="Label through a running API (e.g. http://127.0.0.1:8000)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Label every response of a month (append-only; rerunning with the same model is a no-op)."""
    cfg = settings()
    with errors_to_exit(as_json):
        from persona.labeling import label_month
        from persona.store.engine import open_store

        wanted = parse_month(month)
        engine = open_store(cfg.database_url)
        try:
            with progress(f"label {wanted} with the {cfg.model_alias}"):
                result = label_month(cfg, engine, wanted, via_api=via_api or None)
        finally:
            engine.dispose()
    emit(result.to_dict(), as_json, render)


def render(result: dict[str, Any]) -> None:
    """Print a labeling result for people (stderr)."""
    console.print(
        f"[bold]{result['month']}[/] labelled with {result['model_name']} "
        f"v{result['model_version']} ({result['via']}): {result['rows']} rows, "
        f"{result['written']} written, {result['skipped']} already there, "
        f"{result['seconds']} s"
    )
    table = Table("persona", "rows", "share")
    total = sum(result["persona_mix"].values()) or 1
    for persona, rows in sorted(result["persona_mix"].items(), key=lambda kv: -kv[1]):
        table.add_row(persona, str(rows), f"{rows / total:.1%}")
    console.print(table)
