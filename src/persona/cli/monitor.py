"""`persona monitor`: check a month for drift and persona fit; the verdict is data (exit 0)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from persona.cli._common import (
    JSON_OPTION,
    REFERENCE_OPTION,
    VERDICT_STYLE,
    console,
    emit,
    errors_to_exit,
    reference_window,
    settings,
)
from persona.months import parse_month


def monitor(
    month: str = typer.Option(..., "--month", help="Month to check, YYYY-MM."),
    reference: str = REFERENCE_OPTION,
    alert: bool = typer.Option(
        False, "--alert", help="Send the configured alerts when the verdict is watch or retrain."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a month against a reference window: drift per feature, persona fit, verdict."""
    cfg = settings()
    with errors_to_exit(as_json):
        from persona.errors import NotIngestedError
        from persona.monitoring import run_check
        from persona.store.engine import open_store
        from persona.store.survey_queries import has_month

        current = parse_month(month)
        refs = reference_window(reference)
        engine = open_store(cfg.database_url)
        try:
            if not has_month(engine, current):  # refuse before anything is recorded
                raise NotIngestedError([current], "monitoring")
            checked = run_check(cfg, engine, current, refs)
        finally:
            engine.dispose()
        result = checked.to_dict()
        # A reused (identical) check already alerted when it was first made.
        if alert and not checked.existing and checked.verdict in ("watch", "retrain"):
            from persona.alerts import alert_for_check

            result["alerts"] = [a.to_dict() for a in alert_for_check(cfg, current, checked)]
    emit(result, as_json, render)


def _fmt(value: Any, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def render(result: dict[str, Any]) -> None:
    """Print a check result for people (stderr)."""
    style = VERDICT_STYLE.get(result["verdict"], "bold")
    refs = ", ".join(result["reference_months"])
    console.print(
        f"[bold]{result['month']}[/] vs [bold]{refs}[/] - model {result['model_name']} "
        f"v{result['model_version']}: [{style}]{result['verdict']}[/]"
        + (" (stored run, unchanged data)" if result.get("existing") else "")
    )
    for reason in result["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    if result["features"]:
        sampled = (
            f"rows tested: current {result['n_current_sampled']} of {result['n_current']}, "
            f"reference {result['n_reference_sampled']} of {result['n_reference']}"
        )
        table = Table(title="Data drift per feature", caption=sampled)
        for column in ("feature", "test", "score", "threshold", "drifted"):
            table.add_column(column)
        for f in result["features"]:
            mark = "[red]yes[/]" if f["drifted"] else "no"
            table.add_row(f["feature"], f["test"], f"{f['score']:.3g}", f"{f['threshold']:g}", mark)
        console.print(table)
    fit = result["persona_fit"]
    if fit:
        table = Table(title="Persona fit (current vs reference)")
        for column in ("metric", "current", "reference", "ratio / test"):
            table.add_column(column)
        table.add_row(
            "unassigned rate",
            _fmt(fit["unassigned_rate"], "{:.1%}"),
            _fmt(fit["reference_unassigned_rate"], "{:.1%}"),
            "",
        )
        table.add_row(
            "mean distance",
            _fmt(fit["mean_distance"], "{:.2f}"),
            _fmt(fit["reference_mean_distance"], "{:.2f}"),
            _fmt(fit["distance_ratio"], "{:.2f}x"),
        )
        table.add_row(
            "p95 distance",
            _fmt(fit["p95_distance"], "{:.2f}"),
            _fmt(fit["reference_p95_distance"], "{:.2f}"),
            _fmt(fit["p95_distance_ratio"], "{:.2f}x"),
        )
        mix = fit["mix"]
        for pid in mix["bins"]:
            persona = fit["centroid_shift"].get(pid, {})
            table.add_row(
                f"share {pid}",
                _fmt(mix["current_shares"][pid], "{:.1%}"),
                _fmt(mix["reference_shares"][pid], "{:.1%}"),
                _fmt(persona.get("shift"), "shift {:.2f} std")
                + (
                    ""
                    if persona.get("spread_ratio") is None
                    else f", spread x{persona['spread_ratio']:.2f}"
                ),
            )
        table.add_row("mix PSI", _fmt(mix["psi"]), "", f"chi-square p={mix['chi2_pvalue']:.2g}")
        console.print(table)
    if result.get("report_path"):
        console.print(f"report: {result['report_path']}", highlight=False)
