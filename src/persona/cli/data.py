"""`persona data ...`: generate synthetic months, ingest survey files, list stored months."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
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
from persona.settings import Settings
from persona.store import survey_ingest, survey_queries
from persona.store.engine import open_store
from persona.survey_input import parse_bad_rows
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


def _actor(configured: str) -> str:
    """Who ingests: the ``INGEST_ACTOR`` setting, else the OS user."""
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password file
        return "unknown"


def _with_progress(
    cfg: Settings, files: list[Path], start: Callable[[str], None], done: Callable[[], None]
) -> list[survey_ingest.Reader]:
    """File readers that move the progress line on as the delivery reaches each file."""

    def reader(file: Path, first: bool) -> survey_ingest.Reader:
        def read() -> Any:
            if not first:
                done()
            start(f"ingest {file.name} ({size_text(file.stat().st_size)})")
            return survey_ingest.file_reader(file, cfg.ingest_error_limit, cfg.ingest_chunk_rows)()

        return read

    return [reader(file, i == 0) for i, file in enumerate(files)]


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="Survey files, or folders of survey_*.csv."),  # noqa: B008
    month: str = typer.Option(None, "--month", help="YYYY-MM (must match survey_month)."),
    replace: bool = typer.Option(
        False, "--replace", help="Supersede the stored rows of the delivered months (audited)."
    ),
    max_bad_rows: str = typer.Option(
        "0", "--max-bad-rows", help="Invalid rows a file may hold (N or a share, e.g. 0.1%)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ingest a delivery into DATABASE_URL in one transaction: every file is written, or none.

    Rows of a stored respondent with other answers fail the delivery unless --replace;
    invalid rows fail it unless --max-bad-rows lets them into survey_rejects (docs/data.md).
    """
    cfg = settings()
    with errors_to_exit(as_json):
        files = expand_paths(paths)
        engine = open_store(cfg.database_url)
    try:
        options = survey_ingest.IngestOptions(
            month=None if month is None else parse_month(month),
            bounds=Bounds(cfg.feature_min, cfg.feature_max),
            error_limit=cfg.ingest_error_limit,
            replace=replace,
            bad_rows=parse_bad_rows(max_bad_rows),
            actor=_actor(cfg.ingest_actor),
        )
    except PersonaError as exc:  # reported as the first file's failure, nothing ingested
        _finish([], survey_ingest.DeliveryError(0, exc), files, as_json)
        return
    results: list[survey_ingest.IngestResult] = []
    failure: survey_ingest.DeliveryError | None = None
    with progress("ingest", total=len(files)) as (start, done):
        try:
            results = survey_ingest.ingest_delivery(
                engine, _with_progress(cfg, files, start, done), options
            )
            done()
        except survey_ingest.DeliveryError as exc:
            failure = exc
    _finish(results, failure, files, as_json)


def _finish(
    results: list[survey_ingest.IngestResult],
    failure: survey_ingest.DeliveryError | None,
    files: list[Path],
    as_json: bool,
) -> None:
    document: dict[str, Any] = {"files": [r.to_dict() for r in results], "ok": failure is None}
    if failure is not None:
        cause = failure.cause
        done = [{**r.to_dict(), "status": "rolled_back"} for r in failure.done]
        error = cause.to_dict() if isinstance(cause, DataValidationError) else {}
        document["files"] = done
        document["error"] = str(cause).splitlines()[0]
        document["type"] = type(cause).__name__
        document["failed"] = {
            "file": str(files[failure.index]),
            "type": type(cause).__name__,
            "error": str(cause),
            "issues": error.get("issues", []),
            "not_attempted": [str(f) for f in files[failure.index + 1 :]],
        }
    emit(document, as_json, _render_ingested)
    if failure is not None:
        console.print(f"[bold red]error:[/] {failure.cause}", highlight=False)
        console.print(
            f"nothing written: the delivery of {len(files)} file(s) is one transaction "
            f"({files[failure.index]} failed)",
            highlight=False,
        )
        sys.stdout.flush()
        raise typer.Exit(code=2)


_NOTES = {
    "replaced": "replaced the month's rows",
    "unchanged": "same rows as stored: nothing replaced",
    "already_ingested": "already ingested (same content)",
    "rolled_back": "rolled back: another file failed",
}


def _render_ingested(result: dict[str, Any]) -> None:
    table = Table(title="Ingest" if result["ok"] else "Ingest (nothing written)")
    for column in ("source", "month", "rows", "new", "skipped", "rejected", "what happened"):
        table.add_column(column)
    for r in result["files"]:
        table.add_row(
            Path(r["source"]).name,
            r["month"],
            str(r["rows"]),
            str(r["rows_new"]),
            str(r["rows_skipped"]),
            str(r["rows_rejected"]),
            _NOTES.get(r["status"], r["status"]),
        )
    failed = result.get("failed")
    if failed:
        table.add_row(Path(failed["file"]).name, "", "", "", "", "", f"failed: {failed['type']}")
        for name in failed["not_attempted"]:
            table.add_row(Path(name).name, "", "", "", "", "", "not read")
    if result["files"] or failed:
        console.print(table)
    rejected = sum(r["rows_rejected"] for r in result["files"])
    if rejected and result["ok"]:
        console.print(f"{rejected} invalid row(s) set aside in survey_rejects", highlight=False)


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
