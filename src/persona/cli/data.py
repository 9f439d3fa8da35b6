"""`persona data ...`: generate synthetic months, ingest survey files, list stored months."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from persona.catalog import load_catalog
from persona.cli._common import JSON_OPTION, console, emit, errors_to_exit, settings
from persona.cli._progress import progress, size_text
from persona.errors import DataValidationError, IngestError, PersonaError
from persona.features import Bounds
from persona.months import parse_month
from persona.store import survey_ingest, survey_queries
from persona.store.engine import open_store
from persona.synth import FORMATS, SCENARIOS, ScenarioError, default_year, write_month

app = typer.Typer(no_args_is_help=True)
_SCENARIO_HELP = (
    "YYYY-MM=SCENARIO; repeatable (default: March = spread). "
    f"Scenarios: {', '.join(SCENARIOS)} (docs/data.md)."
)


def parse_month_numbers(text: str) -> list[int]:
    """Parse ``"1-5"``, ``"3"`` or ``"1,3,5"`` into month numbers 1..12.

    Raises:
        ScenarioError: Not a month list.
    """
    numbers: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            numbers += range(int(first), int(last or first) + 1)
    except ValueError:
        raise ScenarioError(f"--months {text!r}: expected e.g. 1-5 or 1,3,5") from None
    if not numbers or any(not 1 <= m <= 12 for m in numbers):
        raise ScenarioError(f"--months {text!r}: month numbers must be within 1-12")
    return sorted(set(numbers))


def _overrides(items: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        month, sep, scenario = item.partition("=")
        if not sep or scenario not in SCENARIOS:
            raise ScenarioError(
                f"--scenario-for {item!r}: expected YYYY-MM=SCENARIO with one of {list(SCENARIOS)}"
            )
        found[parse_month(month)] = scenario
    return found


@app.command("generate")
def generate(
    out: Path = typer.Option(None, "--out", help="Output folder (default VAR_DIR/data)."),  # noqa: B008
    year: int = typer.Option(2025, "--year", help="Year of the months."),
    months: str = typer.Option("1-5", "--months", help="Month numbers, e.g. 1-5 or 1,3,5."),
    n: int = typer.Option(500, "--n", min=1, help="Respondents per month."),
    seed: int = typer.Option(None, "--seed", help="Base seed (default RANDOM_SEED)."),
    scenario_for: list[str] = typer.Option(  # noqa: B008
        [],
        "--scenario-for",
        help=_SCENARIO_HELP,
    ),
    fmt: str = typer.Option("both", "--format", help="csv, parquet or both."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write synthetic survey months (survey_YYYY-MM.csv/.parquet + truth_YYYY-MM.csv).

    Every month is `stable` except March (`spread`) unless --scenario-for says otherwise.
    """
    cfg = settings()
    with errors_to_exit(as_json):
        if fmt not in ("csv", "parquet", "both"):
            raise ScenarioError(f"--format {fmt!r}: expected csv, parquet or both")
        formats = FORMATS if fmt == "both" else (fmt,)
        catalog = load_catalog(cfg.persona_catalog)
        overrides = _overrides(scenario_for)
        plan = default_year(year, parse_month_numbers(months), n)
        folder = out if out is not None else cfg.var_dir / "data"
        base_seed = cfg.random_seed if seed is None else seed
        written = []
        with progress("generate", total=len(plan)) as (start, done):
            for p in plan:
                scenario = overrides.get(p.month, p.scenario)
                start(f"generate {p.month} ({p.n:,} rows, {scenario})")
                made = write_month(catalog, p.month, p.n, folder, scenario, base_seed, formats)
                written.append(made.to_dict())
                done()
    emit({"out": str(folder), "seed": base_seed, "months": written}, as_json, _render_generated)


def _render_generated(result: dict[str, Any]) -> None:
    table = Table(title=f"Generated months in {result['out']} (seed {result['seed']})")
    for column in ("month", "scenario", "rows", "files"):
        table.add_column(column)
    for m in result["months"]:
        files = ", ".join(Path(p).name for p in m["files"].values())
        table.add_row(m["month"], m["scenario"], str(m["rows"]), files)
    console.print(table)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Expand folders into their ``survey_*.csv`` files (sorted); keep files as given.

    Raises:
        IngestError: A path does not exist or a folder has no survey CSV.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("survey_*.csv"))
            if not found:
                raise IngestError(f"{path}: no survey_*.csv files in this folder")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise IngestError(f"{path}: no such file or folder")
    return files


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="Survey files, or folders of survey_*.csv."),  # noqa: B008
    month: str = typer.Option(None, "--month", help="YYYY-MM (must match survey_month)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ingest survey files into DATABASE_URL; a bad file is reported and nothing of it written."""
    cfg = settings()
    with errors_to_exit(as_json):
        files = expand_paths(paths)
        engine = open_store(cfg.database_url)
    bounds = Bounds(cfg.feature_min, cfg.feature_max)
    results: list[dict[str, Any]] = []
    failure: PersonaError | None = None
    try:
        wanted = None if month is None else parse_month(month)
    except PersonaError as exc:  # reported as the first file's failure, nothing ingested
        _finish(results, exc, files, as_json)
        return
    with progress("ingest", total=len(files)) as (start, done):
        for file in files:
            start(f"ingest {file.name} ({size_text(file.stat().st_size)})")
            try:
                result = survey_ingest.ingest_file(
                    engine, file, month=wanted, bounds=bounds, error_limit=cfg.ingest_error_limit
                )
            except PersonaError as exc:
                failure = exc
                break
            results.append(result.to_dict())
            done()
    _finish(results, failure, files, as_json)


def _finish(
    results: list[dict[str, Any]], failure: PersonaError | None, files: list[Path], as_json: bool
) -> None:
    document: dict[str, Any] = {"files": results, "ok": failure is None}
    if failure is not None:
        bad = files[len(results)]
        error = failure.to_dict() if isinstance(failure, DataValidationError) else {}
        document["error"] = str(failure).splitlines()[0]
        document["type"] = type(failure).__name__
        document["failed"] = {
            "file": str(bad),
            "type": type(failure).__name__,
            "error": str(failure),
            "issues": error.get("issues", []),
            "not_attempted": [str(f) for f in files[len(results) + 1 :]],
        }
    emit(document, as_json, _render_ingested)
    if failure is not None:
        console.print(f"[bold red]error:[/] {failure}", highlight=False)
        console.print(f"nothing from {files[len(results)]} was written", highlight=False)
        sys.stdout.flush()
        raise typer.Exit(code=2)


def _render_ingested(result: dict[str, Any]) -> None:
    table = Table(title="Ingest")
    for column in ("source", "month", "rows", "new", "skipped", "note"):
        table.add_column(column)
    for r in result["files"]:
        note = "already ingested (same content)" if r["already_ingested"] else ""
        table.add_row(
            Path(r["source"]).name,
            r["month"],
            str(r["rows"]),
            str(r["rows_new"]),
            str(r["rows_skipped"]),
            note,
        )
    if result["files"]:
        console.print(table)


@app.command("months")
def months_(as_json: bool = JSON_OPTION) -> None:
    """List the stored survey months with their row counts."""
    cfg = settings()
    with errors_to_exit(as_json):
        engine = open_store(cfg.database_url)
        found = survey_queries.list_months(engine)
    document = {"months": [m.to_dict() for m in found], "total_rows": sum(m.rows for m in found)}
    emit(document, as_json, _render_months)


def _render_months(result: dict[str, Any]) -> None:
    table = Table(title="Survey months")
    table.add_column("month")
    table.add_column("rows", justify="right")
    for m in result["months"]:
        table.add_row(m["month"], str(m["rows"]))
    console.print(table)
    console.print(f"{len(result['months'])} month(s), {result['total_rows']} rows")
