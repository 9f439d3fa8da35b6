"""`persona spark label|monitor`: the Spark jobs (local mode here, YARN on Dataproc)."""

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

app = typer.Typer(no_args_is_help=True)

INPUT_OPTION = typer.Option(
    ..., "--input", help="Parquet respondents (response_id, survey_month, x1..x10): path or gs://."
)


@app.command("label")
def label(
    input_path: str = INPUT_OPTION,
    output: str = typer.Option(
        ..., "--output", help="Root of the partitioned Parquet labels: path or gs://."
    ),
    month: str = typer.Option(None, "--month", help="Only this month, YYYY-MM."),
    method: str = typer.Option(
        None,
        "--method",
        help="native (JVM column expressions, default), arrays (pandas UDF) or spark_udf.",
    ),
    jdbc: bool = typer.Option(
        False, "--jdbc", help="Also append the labels to persona_assignments over JDBC."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Label every row of a Parquet dataset with the champion on Spark, with lineage."""
    cfg = settings()
    with errors_to_exit(as_json):
        from persona.months import parse_month
        from persona.spark.label import label_dataset
        from persona.spark.session import start_session

        wanted = None if month is None else parse_month(month)  # before Spark starts
        spark = start_session(cfg, "persona-spark-label")
        result = label_dataset(spark, cfg, input_path, output, month=wanted, method=method,
                               jdbc=jdbc)  # fmt: skip
    emit(result.to_dict(), as_json, render_label)


@app.command("monitor")
def monitor(
    input_path: str = INPUT_OPTION,
    month: str = typer.Option(..., "--month", help="Month to check, YYYY-MM."),
    reference: str = REFERENCE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Monitoring statistics of a month on Spark, judged by the same policy as `monitor`."""
    cfg = settings()
    with errors_to_exit(as_json):
        from persona.months import parse_month
        from persona.spark.monitor import monitor_dataset
        from persona.spark.session import start_session

        current, refs = parse_month(month), reference_window(reference)  # before Spark starts
        spark = start_session(cfg, "persona-spark-monitor")
        result = monitor_dataset(spark, cfg, input_path, current, refs)
    emit(result, as_json, render_monitor)


def render_label(result: dict[str, Any]) -> None:
    """Print a Spark labeling result for people (stderr)."""
    jdbc = result["jdbc_written"]
    console.print(
        f"[bold]{result['input']}[/] labelled with {result['model_name']} "
        f"v{result['model_version']} ({result['method']}): {result['rows']} rows in "
        f"{result['seconds']} s -> {result['output']}"
        + (f"; {jdbc} rows appended over JDBC" if jdbc is not None else "")
    )
    table = Table("persona", "rows", "share")
    total = sum(result["persona_mix"].values()) or 1
    for persona, rows in sorted(result["persona_mix"].items(), key=lambda kv: -kv[1]):
        table.add_row(persona, str(rows), f"{rows / total:.1%}")
    console.print(table)


def render_monitor(result: dict[str, Any]) -> None:
    """Print a Spark monitoring verdict for people (stderr)."""
    style = VERDICT_STYLE.get(result["verdict"], "bold")
    console.print(
        f"[bold]{result['month']}[/] vs {', '.join(result['reference_months'])} on Spark "
        f"({result['model_name']} v{result['model_version']}): [{style}]{result['verdict']}[/]"
    )
    for reason in result["reasons"]:
        console.print(f"  - {reason}")
