"""`persona review ...`: what waits for a person, and the decision in one step.

`persona review` lists the versions whose review is pending: each candidate persona with
this month's size and share, its nearest persona, the answers where they differ most, the
months its segment has been seen and the persona profile picture. `approve` names the
candidates and promotes the version (gates and audit as any promotion; the months since
the drift are relabelled); `reject` closes the review and stops its reminders.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from persona.cli._common import JSON_OPTION, console, emit, errors_to_exit, settings
from persona.cli.model import _actor, _render_move, _store
from persona.errors import PersonaError

app = typer.Typer(invoke_without_command=True)


class NamePairError(PersonaError):
    """A ``--name`` that is not ``persona-id=Name``."""


@app.callback()
def show(
    ctx: typer.Context,
    everything: bool = typer.Option(False, "--all", help="Also decided reviews."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the versions waiting for a person's review (with --all: decided ones too)."""
    if ctx.invoked_subcommand is not None:
        return
    from persona.registry.reviews import list_reviews

    cfg = settings()
    with errors_to_exit(as_json):
        found = [r.to_dict() for r in list_reviews(cfg, everything)]
    emit({"model": cfg.model_name, "reviews": found}, as_json, _render_reviews)


def parse_names(pairs: list[str]) -> dict[str, str]:
    """``["candidate-1=Thrifty Tina"]`` -> ``{"candidate-1": "Thrifty Tina"}``.

    Raises:
        NamePairError: A pair without ``=`` or with an empty side.
    """
    names: dict[str, str] = {}
    for pair in pairs:
        pid, sep, name = pair.partition("=")
        if not sep or not pid.strip() or not name.strip():
            raise NamePairError(
                f'--name {pair!r}: expected PERSONA_ID="Name", e.g. candidate-1="Tina"'
            )
        names[pid.strip()] = name.strip()
    return names


@app.command("approve")
def approve(
    version: str = typer.Argument(..., help="The version under review."),
    name: list[str] = typer.Option(  # noqa: B008 - Typer's way to declare a repeatable option
        [], "--name", help='Name a persona: --name candidate-1="Thrifty Tina" (repeatable).'
    ),
    reason: str = typer.Option("review approved", "--reason", help="Why (recorded)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Name the candidates and promote the version (same gates and audit as any promotion)."""
    from persona.registry.promotion import approve as run

    cfg = settings()
    with errors_to_exit(as_json), _store(cfg) as engine:
        result = run(cfg, engine, version, parse_names(name), reason, _actor()).to_dict()
    emit(result, as_json, _render_approval)


@app.command("reject")
def reject(
    version: str = typer.Argument(..., help="The version under review."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Reject the version: never promoted by the cycle, its segment no longer reminded."""
    from persona.registry.reviews import reject as run

    cfg = settings()
    with errors_to_exit(as_json):
        result = run(cfg, version, reason, _actor()).to_dict()
    emit(result, as_json, lambda r: console.print(f"v{r['version']}: review {r['status']}"))


def _render_reviews(result: dict[str, Any]) -> None:
    reviews = result["reviews"]
    if not reviews:
        console.print(f"nothing waits for review ({result['model']})")
        return
    for r in reviews:
        gates = "pass" if r["gates_passed"] else "fail"
        console.print(
            f"[bold]v{r['version']}[/] {r['status']}: trained on {r['training_months']} from "
            f"v{r['trained_from']}; seen in {r['months_count']} months "
            f"({r.get('first_month')} to {r.get('last_month')}); gates {gates}",
            highlight=False,
        )
        for c in r.get("candidates", []):
            answers = ", ".join(
                f"{a['feature']} {a['candidate']:g} vs {a['nearest']:g}" for a in c["answers"]
            )
            console.print(
                f"  {c['persona_id']}: {c['rows']} respondents this month "
                f"({100 * c['share']:.1f}% of the month), nearest {c['nearest_persona']} at "
                f"{c['distance']:.1f}; answers that differ most: {answers}",
                highlight=False,
            )
        if r.get("picture"):
            console.print(f"  persona profiles: {escape(str(r['picture']))}", highlight=False)
        if r["status"] == "pending":
            candidates = r.get("candidates") or []
            naming = f' --name {candidates[0]["persona_id"]}="<name>"' if candidates else ""
            console.print(
                f"  approve: persona review approve {r['version']}{naming}\n"
                f'  reject:  persona review reject {r["version"]} --reason "<why>"',
                highlight=False,
            )


def _render_approval(result: dict[str, Any]) -> None:
    for pid, given in result["names"].items():
        console.print(f"{pid} is now {given!r}", highlight=False)
    _render_move(result)
