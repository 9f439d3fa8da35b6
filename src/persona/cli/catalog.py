"""`persona catalog ...`: show the persona catalog in use."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from persona.catalog import load_catalog
from persona.cli._common import JSON_OPTION, console, emit, errors_to_exit, settings

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(as_json: bool = JSON_OPTION) -> None:
    """Print the personas of the catalog (`PERSONA_CATALOG`)."""
    cfg = settings()
    with errors_to_exit(as_json):
        catalog = load_catalog(cfg.persona_catalog)
    result = {"path": str(cfg.persona_catalog), **catalog.to_dict()}
    emit(result, as_json, _render)


def _render(result: dict[str, Any]) -> None:
    table = Table(title=f"Persona catalog ({result['path']})")
    for column in ("id", "name", "description", "centroid"):
        table.add_column(column)
    for p in result["personas"]:
        centroid = ", ".join(f"{v:.2f}" for v in p["centroid"])
        table.add_row(p["id"], p["name"], p["description"], f"[{centroid}]")
    console.print(table)
