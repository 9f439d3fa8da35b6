"""Label a Parquet dataset with the champion on Spark; write the labels with lineage.

Three ways to apply the model, measured side by side by `benchmarks/spark_label.py`:

- ``native`` (default): the nearest-centroid model as Spark column expressions
  (`persona.spark.native`); the JVM labels the rows, no Python worker runs.
- ``arrays``: `mapInPandas` over Arrow batches; each batch becomes the float64
  ``(rows, 10)`` array and goes through `PersonaModel.predict`, the code the API and the
  single-machine labeler run. The model travels as its JSON form (a few hundred bytes).
- ``spark_udf``: `mlflow.pyfunc.spark_udf` on the registered pyfunc (MLflow loads the
  model in every Python worker). Its output has no nearest persona, so
  ``nearest_persona_id`` is the persona for assigned rows and null for unassigned ones.

The last two stay for models that need Python. All return the same persona ids, names,
distances and margins. Nothing is collected on the driver: the labels go straight from the
executors to Parquet (partitioned by model name, model version and survey month; a rerun
replaces exactly its own partitions) and, optionally, over JDBC into `persona_assignments`
(a staging table, then one ``INSERT ... ON CONFLICT DO NOTHING`` on the driver's
connection, so a rerun writes nothing twice and a failed run leaves nothing behind).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from persona.errors import DataValidationError, Issue
from persona.features import FEATURE_NAMES
from persona.file_labeling import label_figures
from persona.model import UNASSIGNED_ID, PersonaModel, model_from_dict, model_to_dict
from persona.months import Month
from persona.settings import Settings
from persona.spark.session import SparkJobError

log = logging.getLogger(__name__)

ID_COLUMN = "response_id"
MONTH_COLUMN = "survey_month"
LABEL_COLUMNS = ("persona_id", "persona_name", "nearest_persona_id", "distance", "margin",
                 "unassigned")  # fmt: skip
PARTITION_COLUMNS = ("model_name", "model_version", MONTH_COLUMN)
METHODS = ("native", "arrays", "spark_udf")


def read_dataset(spark: Any, path: str, month: Month | None = None) -> Any:
    """Read a Parquet dataset of respondents and check its columns (lazy).

    Args:
        spark: The SparkSession.
        path: A local path or ``gs://bucket/prefix`` holding Parquet files.
        month: Keep only this month (needs a `survey_month` column), or give a dataset
            without one its month.

    Returns:
        A DataFrame ``response_id, survey_month, x1..x10`` (features as double).

    Raises:
        SparkJobError: The path cannot be read.
        DataValidationError: A required column is missing or not numeric.
    """
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    try:
        frame = spark.read.parquet(path)
    except PySparkException as exc:
        raise SparkJobError(f"cannot read Parquet at {path}: {_first_line(exc)}") from None
    types = dict(frame.dtypes)
    issues = [
        Issue(None, col, f"missing in {path}") for col in (ID_COLUMN, *FEATURE_NAMES)
        if col not in types
    ]  # fmt: skip
    issues += [
        Issue(None, col, f"has type {types[col]} in {path}; expected a number")
        for col in FEATURE_NAMES
        if col in types and types[col] not in ("double", "float", "int", "bigint", "smallint")
    ]
    if MONTH_COLUMN not in types and month is None:
        issues.append(Issue(None, MONTH_COLUMN, f"missing in {path}; pass the month"))
    if issues:
        raise DataValidationError(f"{path} is not a respondent dataset", issues)
    if month is not None:
        if MONTH_COLUMN in types:
            frame = frame.where(F.col(MONTH_COLUMN) == month)
        else:
            frame = frame.withColumn(MONTH_COLUMN, F.lit(month))
    return frame.select(
        F.col(ID_COLUMN).cast("long"),
        F.col(MONTH_COLUMN).cast("string"),
        *[F.col(c).cast("double") for c in FEATURE_NAMES],
    )


def label_schema(keep_features: bool = False) -> str:
    """The DDL schema of a labelled dataset (before lineage).

    Args:
        keep_features: Whether ``x1..x10`` stay next to the labels (for monitoring).
    """
    labels = ("persona_id string, persona_name string, nearest_persona_id string, "
              "distance double, margin double, unassigned boolean")  # fmt: skip
    features = "".join(f", {c} double" for c in FEATURE_NAMES) if keep_features else ""
    return f"{ID_COLUMN} long, {MONTH_COLUMN} string{features}, {labels}"


def _label_batches(model_json: str, keep_features: bool = False) -> Any:
    """The `mapInPandas` function of the ``arrays`` method (runs in the Python workers)."""

    def label_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model: PersonaModel = model_from_dict(json.loads(model_json))
        for batch in batches:
            x = np.ascontiguousarray(batch[list(FEATURE_NAMES)].to_numpy(dtype=np.float64))
            bad = ~np.isfinite(x)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise DataValidationError(
                    "respondent features must be finite numbers",
                    [Issue(None, FEATURE_NAMES[col],
                           f"{x[row, col]} for {ID_COLUMN} {batch[ID_COLUMN].iloc[row]}")],
                )  # fmt: skip
            pred = model.predict(x)
            features = {c: x[:, i] for i, c in enumerate(FEATURE_NAMES)} if keep_features else {}
            yield pd.DataFrame({
                ID_COLUMN: batch[ID_COLUMN].to_numpy(),
                MONTH_COLUMN: batch[MONTH_COLUMN].to_numpy(),
                **features,
                "persona_id": pred.persona_id.astype(object),
                "persona_name": pred.persona_name.astype(object),
                "nearest_persona_id": pred.nearest_id.astype(object),
                "distance": pred.distance,
                "margin": pred.margin,
                "unassigned": ~pred.assigned,
            })  # fmt: skip

    return label_batches


def label_frame(
    frame: Any, loaded: Any, method: str = "native", *, keep_features: bool = False
) -> Any:
    """Add the champion's labels to a respondent DataFrame (lazy, nothing runs yet).

    Args:
        frame: From `read_dataset`.
        loaded: A `registry.LoadedModel` (its model, or for ``spark_udf`` its local folder).
        method: ``native``, ``arrays`` or ``spark_udf``.
        keep_features: Keep ``x1..x10`` next to the labels (not with ``spark_udf``).

    Returns:
        A DataFrame with `label_schema` columns.

    Raises:
        SparkJobError: Unknown method.
    """
    from pyspark.sql import functions as F

    if method == "native":
        from persona.spark.native import label_frame_native

        keep = [ID_COLUMN, MONTH_COLUMN, *(FEATURE_NAMES if keep_features else ())]
        return label_frame_native(frame, loaded.model, ID_COLUMN, keep)
    if method == "arrays":
        model_json = json.dumps(model_to_dict(loaded.model))
        return frame.mapInPandas(
            _label_batches(model_json, keep_features), schema=label_schema(keep_features)
        )
    if method != "spark_udf":
        raise SparkJobError(f"unknown labeling method {method!r}; choose one of {METHODS}")
    import mlflow.pyfunc

    udf = mlflow.pyfunc.spark_udf(
        frame.sparkSession,
        loaded.uri,
        result_type="persona_id string, persona_name string, distance double, margin double",
        env_manager="local",
    )
    out = frame.withColumn("_label", udf(*FEATURE_NAMES))
    unassigned = F.col("_label.persona_id") == F.lit(UNASSIGNED_ID)
    return out.select(
        ID_COLUMN,
        MONTH_COLUMN,
        F.col("_label.persona_id").alias("persona_id"),
        F.col("_label.persona_name").alias("persona_name"),
        F.when(~unassigned, F.col("_label.persona_id")).alias("nearest_persona_id"),
        F.col("_label.distance").alias("distance"),
        F.col("_label.margin").alias("margin"),
        unassigned.alias("unassigned"),
    )


def with_lineage(labels: Any, model_name: str, model_version: str, labeled_at: Any) -> Any:
    """Add the lineage columns (model name and version, time of the run) to labels (lazy)."""
    from pyspark.sql import functions as F

    return labels.select(
        "*",
        F.lit(model_name).alias("model_name"),
        F.lit(str(model_version)).alias("model_version"),
        F.lit(labeled_at).cast("timestamp").alias("assigned_at"),
    )


@dataclass(frozen=True)
class SparkLabelResult:
    """What labeling a dataset on Spark did (`to_dict` is the ``--json`` document).

    Attributes:
        input: The Parquet respondents read.
        output: Root of the partitioned Parquet labels written.
        month: The month kept (None: every month of the dataset).
        model_name: Registered model name (lineage).
        model_version: Registered model version (lineage).
        method: ``native``, ``arrays`` or ``spark_udf``.
        rows: Labels written.
        persona_mix: Labels per persona id, sorted by id.
        unassigned_rate: Share of ``unassigned`` labels (None without rows).
        jdbc_written: Rows appended to `persona_assignments` (None without ``--jdbc``).
        seconds: Wall time.
        rows_per_s: Throughput (None when no time passed).
    """

    input: str
    output: str
    month: Month | None
    model_name: str
    model_version: str
    method: str
    rows: int
    persona_mix: dict[str, int]
    unassigned_rate: float | None
    jdbc_written: int | None
    seconds: float
    rows_per_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        month = None if self.month is None else str(self.month)
        return {**asdict(self), "month": month}


def label_dataset(
    spark: Any,
    settings: Settings,
    input_path: str,
    output_path: str,
    *,
    month: Month | None = None,
    method: str | None = None,
    jdbc: bool = False,
    loaded: Any = None,
) -> SparkLabelResult:
    """Label every row of a Parquet dataset and write the labels with lineage.

    One pass: the executors read, label and write, and count the labels per persona on
    the way (a Spark `Observation`); the driver only plans the job.

    Args:
        spark: The SparkSession.
        settings: Model source (`MODEL_ALIAS`...), `SPARK_LABEL_METHOD`, `DATABASE_URL`.
        input_path: Parquet respondents (`read_dataset`).
        output_path: Root of the partitioned Parquet labels (local or ``gs://``).
        month: Only this month (or the month of a dataset without `survey_month`).
        method: ``native``, ``arrays`` or ``spark_udf`` (default `SPARK_LABEL_METHOD`).
        jdbc: Also append the labels to `persona_assignments` in `DATABASE_URL` (PostgreSQL).
        loaded: A `registry.LoadedModel`; default the `MODEL_ALIAS` version.

    Returns:
        What was done (`SparkLabelResult`).

    Raises:
        SparkJobError: The job failed (nothing of this run is left in the output).
        DataValidationError: Bad columns or non-finite features.
        StoreError: The JDBC write failed.
    """
    import datetime as dt

    started = time.perf_counter()
    method = method or settings.spark_label_method
    if loaded is None:
        from persona.registry.versions import load_model_for_serving

        loaded = load_model_for_serving(settings)
    frame = read_dataset(spark, input_path, month)
    labeled_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with tempfile.TemporaryDirectory() as tmp:
        if method == "spark_udf":  # MLflow would resolve a models:/ URI with its defaults
            from persona.registry.versions import download_model

            loaded = replace(loaded, uri=download_model(settings, loaded.uri, tmp))
        labels = with_lineage(label_frame(frame, loaded, method), loaded.name,
                              str(loaded.version), labeled_at)  # fmt: skip
    with spark_errors(f"labeling {input_path}"):
        counted, read_mix = _count_personas(labels, loaded.model)
        counted.write.mode("overwrite").partitionBy(*PARTITION_COLUMNS).parquet(output_path)
        mix = read_mix()
    jdbc_written = None
    if jdbc:
        if method == "spark_udf":
            raise SparkJobError("--jdbc needs the nearest persona: label with method 'native'")
        from persona.spark.jdbc import write_assignments_jdbc

        written = read_labels(spark, output_path, loaded.name, str(loaded.version), month)
        jdbc_written = write_assignments_jdbc(written, settings)
    result = SparkLabelResult(
        input=input_path,
        output=output_path,
        month=month,
        model_name=loaded.name,
        model_version=str(loaded.version),
        method=method,
        jdbc_written=jdbc_written,
        **label_figures(mix, started),
    )
    log.info("spark-labelled %s with %s v%s (%s): %d rows in %.1fs", input_path,
             loaded.name, loaded.version, method, result.rows, result.seconds)  # fmt: skip
    return result


def _count_personas(labels: Any, model: PersonaModel) -> tuple[Any, Any]:
    """Count the labels per persona while they are written (no second read of the output).

    Returns:
        The labels with a Spark `Observation` attached, and a function that returns
        ``{persona_id: rows}`` (personas with rows only) once the write has run.

    Raises:
        SparkJobError: (from the function) a label is not one of the model's personas.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    ids = [*model.persona_ids, UNASSIGNED_ID]
    observation = Observation("persona_mix")
    counts = [F.count_if(F.col("persona_id") == F.lit(p)).alias(f"n{i}") for i, p in enumerate(ids)]
    observed = labels.observe(observation, F.count(F.lit(1)).alias("rows"), *counts)

    def read_mix() -> dict[str, int]:
        metrics = observation.get
        mix = {p: int(metrics[f"n{i}"]) for i, p in enumerate(ids) if metrics[f"n{i}"]}
        if sum(mix.values()) != metrics["rows"]:
            raise SparkJobError(f"labels outside the model's personas {ids}: {metrics}")
        return mix

    return observed, read_mix


def read_labels(
    spark: Any, output_path: str, model_name: str, model_version: str, month: Month | None = None
) -> Any:
    """Read back the labels one model version wrote under `output_path` (lazy)."""
    from pyspark.sql import functions as F

    labels = spark.read.parquet(output_path).where(
        (F.col("model_name") == model_name) & (F.col("model_version") == str(model_version))
    )
    if month is not None:
        labels = labels.where(F.col(MONTH_COLUMN) == month)
    return labels


@contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Turn a failed Spark job into a `PersonaError` with the worker's own message.

    A `DataValidationError` raised in a Python worker is re-raised as a
    `DataValidationError`; any other Spark failure becomes a `SparkJobError` naming `what`.

    Args:
        what: What was running (for the message).
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        text = str(exc)
        marker = "persona.errors.DataValidationError: "
        if marker in text:
            head, *rest = text.split(marker, 1)[1].splitlines()
            issues = []
            for line in rest:
                if not line.startswith("  - "):
                    break
                issues.append(Issue(None, None, line[4:]))
            summary = head.rsplit(": ", 1)[0] if "problem(s)" in head else head
            raise DataValidationError(f"{what}: {summary}", issues) from None
        raise SparkJobError(f"{what} failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:500] if lines else type(exc).__name__
