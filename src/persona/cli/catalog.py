"""`persona catalog ...`: show the persona catalog in use; name a discovered persona."""

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


@app.command("name")
def name(
    persona_id: str = typer.Argument(..., help="Persona id, e.g. candidate-1."),
    display_name: str = typer.Argument(..., help='Display name, e.g. "Thrifty Tina".'),
    as_json: bool = JSON_OPTION,
) -> None:
    """Name a persona of the champion or challenger; later retrains keep the name."""
    from persona.registry.naming import name_persona

    cfg = settings()
    with errors_to_exit(as_json):
        result = name_persona(cfg, persona_id, display_name)
    emit(result, as_json, lambda r: console.print(f"{r['persona_id']} is now {r['name']!r}"))


def _render(result: dict[str, Any]) -> None:
    table = Table(title=f"Persona catalog ({result['path']})")
    for column in ("id", "name", "description", "centroid"):
        table.add_column(column)
    for p in result["personas"]:
        centroid = ", ".join(f"{v:.2f}" for v in p["centroid"])
        table.add_row(p["id"], p["name"], p["description"], f"[{centroid}]")
    console.print(table)
