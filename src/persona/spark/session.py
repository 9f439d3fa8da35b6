"""Start a SparkSession from the settings, within a time budget."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from persona.errors import PersonaError
from persona.settings import Settings


class SparkJobError(PersonaError):
    """A Spark job could not start or failed (the message names the cause)."""


def spark_conf(settings: Settings, app_name: str) -> dict[str, str]:
    """The Spark configuration of a persona job (pure).

    Args:
        settings: `SPARK_MASTER`, `SPARK_DRIVER_MEMORY`, `SPARK_ARROW_BATCH_ROWS`,
            `SPARK_SHUFFLE_PARTITIONS`, `SPARK_JDBC_JAR`.
        app_name: The application name shown by Spark.

    Returns:
        ``{key: value}`` for `SparkSession.builder.config`.
    """
    conf = {
        "spark.master": settings.spark_master,
        "spark.app.name": app_name,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(settings.spark_arrow_batch_rows),
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # Labels are written partitioned by month: one open file per partition and task
        # instead of sorting every row by its partition first.
        "spark.sql.optimizer.plannedWrite.enabled": "false",
        "spark.sql.maxConcurrentOutputFileWriters": "16",
        "spark.sql.session.timeZone": "UTC",
        # assigned_at as the single-machine path writes it, not as legacy INT96 rows.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        # A whole stage's per-row code is one Java method; the JVM leaves a method of more
        # than 8,000 bytes of bytecode to the interpreter unless told otherwise (a bigger
        # model's labels, see persona.spark.native). Only where we start the JVM.
        "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    if settings.spark_jdbc_jar and settings.spark_jdbc_jar.exists():
        conf["spark.jars"] = str(settings.spark_jdbc_jar)
    return conf


def start_session(settings: Settings, app_name: str = "persona") -> Any:
    """Return a SparkSession (an existing one is reused), started within the time budget.

    Workers run this interpreter (``PYSPARK_PYTHON``) unless the environment says otherwise.

    Args:
        settings: The Spark settings (see `spark_conf`) and `SPARK_START_TIMEOUT_S`.
        app_name: The application name.

    Returns:
        A `pyspark.sql.SparkSession`.

    Raises:
        SparkJobError: pyspark is not installed, Java is missing, or the start took longer
            than `SPARK_START_TIMEOUT_S`.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkJobError(
            'pyspark is not installed: pip install -e ".[spark]" (make venv does)'
        ) from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    conf = spark_conf(settings, app_name)
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # under spark-submit: its master and memory
        for key in ("spark.master", "spark.driver.memory", "spark.driver.extraJavaOptions"):
            conf.pop(key)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    box: dict[str, Any] = {}

    def start() -> None:
        try:
            box["session"] = builder.getOrCreate()
        except Exception as exc:  # reported on the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=start, name="spark-start", daemon=True)
    thread.start()
    thread.join(settings.spark_start_timeout_s)
    if thread.is_alive():
        raise SparkJobError(
            f"Spark did not start within {settings.spark_start_timeout_s:g} s "
            "(SPARK_START_TIMEOUT_S); is Java 17 installed (make spark-deps)?"
        )
    if "error" in box:
        raise SparkJobError(f"cannot start Spark on {settings.spark_master}: {box['error']}")
    session = box["session"]
    session.sparkContext.setLogLevel("WARN")
    return session
