"""`persona run-month` and `persona cycle <step>`: the monthly cycle, whole or step by step.

`run-month` runs the four steps of `persona.flows` in order; `cycle check|retrain|promote|
label` runs one (what each Mage block calls). Options are parsed here; every decision is
in `persona.flows`.
"""

from __future__ import annotations

import json
import logging
import sys
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
    json_stdout,
    reference_window,
    settings,
)
from persona.errors import NotIngestedError, PersonaError
from persona.months import parse_month, parse_window, resolve_month

cycle = typer.Typer(no_args_is_help=True)

_MONTH = typer.Option(..., "--month", help="Month, YYYY-MM (as `cycle check` returned it).")


def run_month(
    month: str = typer.Option(..., "--month", help="Month to run, YYYY-MM (must be ingested)."),
    reference: str = REFERENCE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the monthly cycle: label, monitor, and on drift retrain, gate and promote."""
    cfg = settings()
    with errors_to_exit(as_json):
        from persona.flows import run_month as run

        result = run(cfg, parse_month(month), reference_window(reference), actor="cli")
    emit(result.to_dict(), as_json, render)


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


def _step(step: str, month: str, reference: str | None, as_json: bool) -> None:
    cfg = settings()
    with errors_to_exit(as_json):
        from persona.flows import run_step

        result = run_step(cfg, step, parse_month(month), reference_window(reference), "flow")
    emit(result.to_dict(), as_json, _render_step)


@cycle.command("check")
def check(
    month: str = typer.Option(
        "", "--month", help="Month, YYYY-MM; empty = the month before --run-date."
    ),
    run_date: str = typer.Option(
        "", "--run-date", help="ISO date of a scheduled run (default: today, UTC)."
    ),
    reference: str = REFERENCE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Step 1: govern the champion, label and monitor the month, record, alert; print the branch."""
    with errors_to_exit(as_json):
        resolved = resolve_month(month, run_date)
    _step("check", resolved, reference, as_json)


@cycle.command("retrain")
def retrain(month: str = _MONTH, as_json: bool = JSON_OPTION) -> None:
    """Step 2: on a drifted month, train and register the challenger (idempotent)."""
    _step("retrain", month, None, as_json)


@cycle.command("promote")
def promote(month: str = _MONTH, as_json: bool = JSON_OPTION) -> None:
    """Step 3: on a drifted month, promote the challenger if the rules allow (decided once)."""
    _step("promote", month, None, as_json)


@cycle.command("label")
def label(month: str = _MONTH, as_json: bool = JSON_OPTION) -> None:
    """Step 4: label the month with its final champion and close the month."""
    _step("label", month, None, as_json)


def _render_step(result: dict[str, Any]) -> None:
    table = Table(title=f"Cycle step {result['step']} {result['month']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in result.items():
        if key in ("step", "month", "governance", "gates", "alerts", "persona_mix"):
            continue
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)


@cycle.command("serve")
def serve() -> None:
    """Run steps sent as JSON lines on stdin, one JSON answer a line (the Mage blocks' runner).

    Requests: ``{"step": "check", "month": "", "run_date": "...", "reference": ""}``,
    ``{"step": "retrain" | "promote" | "label", "month": "2025-03"}`` or
    ``{"step": "batch_label", "month": "", "run_date": "..."}``. Answers:
    ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "...", "type": "..."}``;
    a month that is not ingested adds ``"stop": true`` (the block says the error in one
    line and the run ends there, no traceback). The first line written is
    ``{"ready": true, ...}``. Ends at the end of stdin.
    """
    cfg = settings()
    from persona import flows  # the import cost is paid once, before "ready"

    out = json_stdout()

    def write(doc: dict[str, Any]) -> None:
        out.write(json.dumps(doc, default=str) + "\n")
        out.flush()

    write({"ready": True, "step_timeout_s": cfg.cycle_step_timeout_s})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            write({"ok": True, "result": _serve_one(cfg, flows, json.loads(line))})
        except PersonaError as exc:
            stop = isinstance(exc, NotIngestedError)
            write({"ok": False, "error": str(exc), "type": type(exc).__name__, "stop": stop})
        except Exception as exc:  # one bad request must not end the runner
            logging.getLogger(__name__).exception("cycle step failed")
            write({"ok": False, "error": f"{type(exc).__name__}: {exc}", "type": "internal"})


def _serve_one(cfg: Any, flows: Any, request: Any) -> dict[str, Any]:
    if not isinstance(request, dict) or not isinstance(request.get("step"), str):
        raise CycleRequestError(f"a request must be a JSON object with a step, got {request!r}")
    step = request["step"]
    text = str(request.get("month") or "")
    if step in ("check", "batch_label"):  # an empty month: the latest ingested one
        month = flows.scheduled_month(cfg, text, str(request.get("run_date") or ""))
    else:
        month = parse_month(text)
    if step == "batch_label":
        return flows.label_with_champion(cfg, month).to_dict()
    reference = parse_window(str(request.get("reference") or "")) if step == "check" else None
    return flows.run_step(cfg, step, month, reference, "flow").to_dict()


class CycleRequestError(PersonaError):
    """A request to `persona cycle serve` is not a JSON object with a step."""
