"""The `persona` command: one sub-command per job, `--json` for machines.

Each sub-module holds the commands of one job and only parses options, calls the package
and prints; no logic lives here.
"""

from __future__ import annotations

import typer

from persona.cli import catalog, data, flow, governance, label, model, monitor, review, serve, spark
from persona.cli._common import reserve_stdout, setup_logging
from persona.cli._entry import PersonaTyper, print_version

app = PersonaTyper(
    name="persona",
    help="PersonaOps: label survey respondents with personas, monitor drift, retrain, serve.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(data.app, name="data", help="Generate, ingest and list monthly survey data.")
app.add_typer(catalog.app, name="catalog", help="Show the vendor persona catalog.")
app.add_typer(model.app, name="model", help="Bootstrap, train, promote, roll back models.")
app.add_typer(governance.app, name="governance", help="Governance receiver and MLflow access.")
app.add_typer(review.app, name="review", help="What waits for a person's review; approve, reject.")
app.add_typer(spark.app, name="spark", help="Label and monitor Parquet datasets on Spark.")
app.command("monitor")(monitor.monitor)
app.command("label")(label.label)
app.command("run-month")(flow.run_month)
app.add_typer(flow.cycle, name="cycle", help="Run one step of the monthly cycle (Mage blocks).")
app.command("serve")(serve.serve)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(
        False,
        "--version",
        callback=print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    setup_logging(verbose)
    reserve_stdout()


def main() -> None:
    """Entry point of the `persona` console script."""
    app()
