"""`persona label`: label a month with the champion and store the labels with lineage."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from persona.cli._common import JSON_OPTION, console, emit, errors_to_exit, settings
from persona.cli._progress import progress
from persona.errors import PersonaError
from persona.months import parse_month


def label(
    month: str = typer.Option(None, "--month", help="Month to label, YYYY-MM."),
    via_api: str = typer.Option(
        None, "--via-api", help="Label through a running API (e.g. http://127.0.0.1:8000)."
    ),
    input_path: str = typer.Option(
        None, "--input", help="Label this Parquet or CSV file/folder instead of the store."
    ),
    output: str = typer.Option(
        None, "--output", help="With --input: root of the partitioned Parquet labels."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Label every response of a month (append-only; rerunning with the same model is a no-op).

    With --input/--output: label a file, streamed, into the layout `persona spark label` writes.
    """
    cfg = settings()
    with errors_to_exit(as_json):
        if input_path or output:
            result = _label_file(cfg, input_path, output, month)
            emit(result, as_json, render_file)
            return
        if not month:
            raise PersonaError("--month is required (or --input and --output to label a file)")
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


def _label_file(cfg: Any, input_path: str | None, output: str | None, month: str | None) -> Any:
    if not (input_path and output):
        raise PersonaError("--input and --output go together")
    from persona.file_labeling import label_file
    from persona.registry.versions import load_model_for_serving

    wanted = None if month is None else parse_month(month)
    with progress(f"label {input_path} with the {cfg.model_alias}"):
        return label_file(load_model_for_serving(cfg), input_path, output, wanted).to_dict()


def render_file(result: dict[str, Any]) -> None:
    """Print a file labeling result for people (stderr)."""
    console.print(
        f"[bold]{result['input']}[/] labelled with {result['model_name']} "
        f"v{result['model_version']}: {result['rows']} rows in {result['seconds']} s "
        f"-> {result['output']}"
    )


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
