"""`persona model ...`: bootstrap, train, promote, roll back, sync and list model versions."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import Engine

from persona.cli._common import JSON_OPTION, console, emit, errors_to_exit, settings
from persona.months import Window, parse_month, parse_window
from persona.settings import Settings

app = typer.Typer(no_args_is_help=True)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return "cli"


@contextmanager
def _store(cfg: Settings) -> Iterator[Engine]:
    from persona.store.engine import open_store

    engine = open_store(cfg.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _run(as_json: bool, job: Callable[[Settings, Engine], dict[str, Any]]) -> dict[str, Any]:
    cfg = settings()
    with errors_to_exit(as_json), _store(cfg) as engine:
        return job(cfg, engine)


@app.command("bootstrap")
def bootstrap(
    calibrate_month: str = typer.Option(
        None, "--calibrate-month", help="Month to calibrate radii on (default: earliest)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register v1 = the catalog centroids and make it champion (idempotent)."""
    from persona.registry import bootstrap as run

    def job(cfg: Settings, engine: Engine) -> dict[str, Any]:
        month = None if calibrate_month is None else parse_month(calibrate_month)
        return run(cfg, engine, month).to_dict()

    result = _run(as_json, job)
    emit(result, as_json, _render_version)


@app.command("train")
def train(
    months: str = typer.Option(None, "--months", help="Training months, e.g. 2025-01,2025-02."),
    month: str = typer.Option(None, "--month", help="Last month of the training window."),
    window: int = typer.Option(None, "--window", help="Window size (default TRAINING_WINDOW)."),
    reason: str = typer.Option("manual retrain", "--reason", help="Why (stored as a tag)."),
    drift_demanded: bool = typer.Option(
        False, "--drift-demanded", help="Drift demands new personas (waives label stability)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Retrain a challenger on some months (idempotent per months + data)."""
    from persona.errors import ModelError
    from persona.registry import train_challenger
    from persona.store.survey_queries import stored_window

    def job(cfg: Settings, engine: Engine) -> dict[str, Any]:
        if (months is None) == (month is None):
            raise ModelError("give either --months M1,M2,... or --month M [--window N]")
        if months is not None:
            chosen = parse_window(months) or Window(())
        else:
            size = window or cfg.training_window_months
            chosen = stored_window(engine, parse_month(month), size)
        return train_challenger(cfg, engine, chosen, reason, drift_demanded).to_dict()

    emit(_run(as_json, job), as_json, _render_training)


@app.command("promote")
def promote(
    version: str = typer.Option(None, "--version", help="Version (default: the challenger)."),
    force: bool = typer.Option(False, "--force", help="Skip the promotion gates."),
    reason: str = typer.Option("manual promotion", "--reason", help="Why (recorded)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make a version champion if the gates pass (a refusal is reported, exit 0)."""
    from persona.registry import promote as run

    result = _run(
        as_json, lambda cfg, engine: run(cfg, engine, version, reason, _actor(), force).to_dict()
    )
    emit(result, as_json, _render_move)


@app.command("rollback")
def rollback(
    reason: str = typer.Option("manual rollback", "--reason", help="Why (recorded)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Give the champion alias back to the previous champion."""
    from persona.registry import rollback as run

    result = _run(as_json, lambda cfg, engine: run(cfg, engine, reason, _actor()).to_dict())
    emit(result, as_json, _render_move)


@app.command("sync")
def sync(as_json: bool = JSON_OPTION) -> None:
    """Record and govern a champion move made outside the platform (MLflow UI, client)."""
    from persona.registry import sync_champion

    emit(
        _run(as_json, lambda cfg, engine: sync_champion(cfg, engine).to_dict()),
        as_json,
        _render_sync,
    )


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List the registered versions with aliases and key tags."""
    from persona.registry import list_versions

    cfg = settings()
    with errors_to_exit(as_json):
        versions = [v.to_dict() for v in list_versions(cfg)]
    emit({"model": cfg.model_name, "versions": versions}, as_json, _render_list)


def _render_version(result: dict[str, Any]) -> None:
    state = "registered" if result["created"] else "already registered"
    aliases = ", ".join(result.get("aliases") or []) or "-"
    console.print(f"version {result['version']} {state} (aliases: {aliases})")


def _render_training(result: dict[str, Any]) -> None:
    _render_version(result)
    console.print(f"  months {', '.join(result['training_months'])}; k={result['k']}")
    console.print(f"  personas: {', '.join(result['personas'])}", highlight=False)
    if result["candidates"]:
        console.print(f"  [yellow]candidates for review:[/] {', '.join(result['candidates'])}")
    if result["retired"]:
        console.print(f"  [yellow]retired-candidates:[/] {', '.join(result['retired'])}")
    gates = result.get("gates") or {}
    verdict = "[green]pass[/]" if gates.get("passed") else "[red]fail[/]"
    console.print(f"  gates: {verdict}")
    for check in gates.get("checks", []):
        console.print(f"    - {check['name']}: {check['detail']}", highlight=False)


def _render_move(result: dict[str, Any]) -> None:
    moved = result.get("promoted", result.get("rolled_back"))
    if moved:
        console.print(f"champion: v{result['previous']} -> [bold]v{result['version']}[/]")
        if result.get("relabelled"):
            console.print(
                f"  relabelled with v{result['version']}: {', '.join(result['relabelled'])}"
            )
    else:
        console.print(f"[yellow]not moved:[/] {result.get('note', '')}")
    for check in (result.get("gates") or {}).get("checks", []):
        console.print(f"  - {check['name']}: {check['detail']}", highlight=False)


def _render_sync(result: dict[str, Any]) -> None:
    if not result["moved"]:
        console.print(f"champion v{result['champion']}: in line with the audit trail")
        return
    console.print(
        f"[yellow]champion moved outside the platform:[/] v{result['previous']} -> "
        f"[bold]v{result['champion']}[/] (recorded as event {result['event_id']})"
    )
    gates = result.get("gates")
    if gates is None:
        console.print(f"  [red]gates not evaluated:[/] {result['gates_error']}")
    else:
        verdict = "[green]pass[/]" if gates["passed"] else "[red]fail (alert sent)[/]"
        console.print(f"  gates after the fact: {verdict}")
    if result["challenger_cleared"]:
        console.print("  challenger alias cleared (it pointed at the new champion)")


def _render_list(result: dict[str, Any]) -> None:
    table = Table(title=f"Registered model {result['model']}")
    for column in ("version", "aliases", "kind", "months", "personas", "stability", "gates"):
        table.add_column(column)
    for v in result["versions"]:
        tags = v["tags"]
        table.add_row(
            v["version"],
            ", ".join(v["aliases"]),
            tags.get("kind", ""),
            tags.get("training_months", ""),
            tags.get("personas", ""),
            tags.get("label_stability_vs_champion", ""),
            tags.get("gates_passed", ""),
        )
    console.print(table)
