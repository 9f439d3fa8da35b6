"""The Evidently UI workspace: one project whose snapshots are the monthly checks.

Every monthly check (`monitoring.run_check`) adds its snapshot (persona fit, verdict and
feature drift, see `monitoring.report`) to the project `EVIDENTLY_PROJECT` of the local
workspace `EVIDENTLY_WORKSPACE` (default `var/evidently`), dated the first day of its
month; a new check of the same month replaces the month's older snapshot. The project's
dashboard plots, month over month, the drifted-feature share, the unassigned rate, the
persona-mix PSI and the verdict (a bar per month named by its verdict). A check whose
reference window holds its own month (the first month: the model's training month, with
nothing earlier) is not added: it would compare the month with itself.

`make evidently-ui` runs ``python -m persona.monitoring.workspace``: it makes sure the
project and its dashboard exist, then serves Evidently's UI on 127.0.0.1:`EVIDENTLY_PORT`
with the persona metrics registered (the UI reads their type from the snapshots).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from persona.monitoring.evidently_fit import METRIC_TYPE
from persona.monitoring.policy import VERDICTS
from persona.months import Month
from persona.settings import Settings

log = logging.getLogger(__name__)

# (title, description, series keys): one line per key, the verdict one bar per month
# stacked from its four words (the month's verdict is 1, the others 0).
PANELS = (
    (
        "Drifted-feature share",
        "share of the ten features whose K-S test drifted",
        ("drift_share",),
    ),
    ("Unassigned rate", "respondents beyond every persona's radius", ("unassigned_rate",)),
    ("Persona-mix PSI", "population stability index of the persona shares", ("mix_psi",)),
    (
        "Verdict",
        "each month's bar is named and coloured by its verdict (hover or legend)",
        tuple(f"verdict_{v}" for v in VERDICTS),
    ),
)
DESCRIPTION = (
    "PersonaOps monthly checks: persona fit, verdict and feature drift per month. The first"
    " month is not plotted: it is the model's training month, with no earlier reference."
)


def open_workspace(settings: Settings) -> Any:
    """Open (creating it if needed) the local Evidently workspace of `settings`."""
    from evidently.ui.workspace import Workspace

    folder = Path(settings.evidently_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return Workspace(str(folder))


def _panels() -> list[Any]:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    panels = []
    for title, description, keys in PANELS:
        values = [
            PanelMetric(
                legend=key.removeprefix("verdict_") if len(keys) > 1 else title,
                metric=METRIC_TYPE,
                metric_labels={"key": key},
            )
            for key in keys
        ]
        if len(keys) > 1:
            panels.append(bar_plot_panel(title, values, description, stacked=True))
        else:
            panels.append(line_plot_panel(title, values, description))
    return panels


def _shape(panel: Any) -> tuple[Any, ...]:
    return (panel.title, panel.subtitle, panel.plot_params, [v.dict() for v in panel.values])


def ensure_project(workspace: Any, settings: Settings) -> Any:
    """Return the checks project, with its description and dashboard as `PANELS` says.

    Idempotent: a dashboard that already has these panels is left alone; an older one
    (the verdict as a number, say) is replaced.

    Args:
        workspace: An Evidently workspace.
        settings: Gives the project name.

    Returns:
        The Evidently project.
    """
    from evidently.sdk.models import DashboardTabModel

    found = workspace.search_project(settings.evidently_project)
    project = found[0] if found else None
    if project is None:
        project = workspace.create_project(settings.evidently_project, description=DESCRIPTION)
    elif project.description != DESCRIPTION:
        project.description = DESCRIPTION
        project.save()
    dashboard = project.dashboard.model()
    wanted = _panels()
    if [_shape(p) for p in dashboard.panels] != [_shape(p) for p in wanted]:
        dashboard.panels = wanted
        dashboard.tabs = [DashboardTabModel(title="General", panels=[p.id for p in wanted])]
        workspace.save_dashboard(project.id, dashboard)
    return project


def add_check(settings: Settings, snapshot: Any, month: Month) -> str:
    """Add a check's snapshot to the project, replacing older snapshots of the same month.

    Args:
        settings: Workspace folder and project name.
        snapshot: The check's Evidently snapshot (`report.build_snapshot`).
        month: The month of the check.

    Returns:
        The new snapshot id.
    """
    workspace = open_workspace(settings)
    project = ensure_project(workspace, settings)
    for snapshot_id in list(workspace.list_runs(project.id)):
        stored = workspace.get_run(project.id, snapshot_id)
        if stored is not None and str(stored.metadata.get("month")) == month:
            workspace.delete_run(project.id, snapshot_id)
    ref = workspace.add_run(project.id, snapshot)
    return str(ref.id)


def add_check_safely(settings: Settings, snapshot: Any, month: Month) -> str | None:
    """`add_check`, logging a failure instead of raising (the stored check must not fail)."""
    try:
        return add_check(settings, snapshot, month)
    except Exception as exc:
        log.warning("could not add the %s check to the Evidently workspace: %s", month, exc)
        return None


def serve(settings: Settings, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Serve the Evidently UI on the workspace (blocks).

    Args:
        settings: Workspace folder, project, port.
        host: Bind address (default loopback).
        port: Port (default `EVIDENTLY_PORT`).
    """
    from evidently.ui.service.app import get_config, run

    ensure_project(open_workspace(settings), settings)
    config = get_config(
        host=host, port=port or settings.evidently_port, workspace=str(settings.evidently_dir)
    )
    run(config)


def main(argv: list[str] | None = None) -> None:
    """``python -m persona.monitoring.workspace [--host H] [--port P]``: serve the UI."""
    from persona.settings import get_settings

    parser = argparse.ArgumentParser(description="Serve the Evidently UI on the checks workspace.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=logging.INFO)
    print(
        f"Evidently UI: http://{args.host}:{args.port or settings.evidently_port} "
        f"(workspace {settings.evidently_dir}, project {settings.evidently_project})",
        flush=True,
    )
    serve(settings, args.host, args.port)


if __name__ == "__main__":
    main()
