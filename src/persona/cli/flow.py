"""`persona run-month`: the monthly cycle for one month (label, monitor, retrain, promote)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from persona.cli._common import (
    JSON_OPTION,
    VERDICT_STYLE,
    console,
    emit,
    errors_to_exit,
    settings,
)
from persona.months import parse_month, parse_month_list


def run_month(
    month: str = typer.Option(..., "--month", help="Month to run, YYYY-MM (must be ingested)."),
    reference: str = typer.Option(
        None, "--reference", help="Reference months, e.g. 2025-01[,2025-02] (default: champion's)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the monthly cycle: label, monitor, and on drift retrain, gate and promote."""
    cfg = settings()
    with errors_to_exit(as_json):
        from persona.flows import run_month as run

        result = run(cfg, parse_month(month), parse_month_list(reference), actor="cli")
    emit(result, as_json, render)


def _mix(mix: dict[str, int]) -> str:
    total = sum(mix.values()) or 1
    ranked = sorted(mix.items(), key=lambda item: -item[1])
    return ", ".join(f"{pid} {n / total:.0%}" for pid, n in ranked)


def render(result: dict[str, Any]) -> None:
    """Print a cycle summary for people (stderr)."""
    table = Table(title=f"Monthly cycle {result['month']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    style = VERDICT_STYLE.get(result["verdict"], "bold")
    before, after = result["model_version_before"], result["model_version_after"]
    rows = [
        ("rows", str(result["rows"])),
        ("reference", ", ".join(result["reference_months"])),
        ("verdict", f"[{style}]{result['verdict']}[/]"),
        ("reasons", "; ".join(result["reasons"]) or "-"),
        ("model", f"v{before}" if before == after else f"v{before} -> v{after}"),
        ("challenger", f"v{result['challenger_version']}" if result["challenger_version"] else "-"),
        ("promoted", "yes" if result["promoted"] else "no"),
        ("labels written", str(result["labels_written"])),
        ("persona mix", _mix(result["persona_mix"])),
        ("report", result["report_path"] or "-"),
    ]
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)
    if result["challenger_version"] and not result["promoted"]:
        console.print(
            f"challenger v{result['challenger_version']} awaits review: "
            f"persona model promote --version {result['challenger_version']}"
        )
