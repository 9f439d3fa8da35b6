"""A nearest-centroid model as Spark column expressions: labels with no Python worker.

`PersonaModel.predict` is a few arithmetic expressions per persona. Written as Spark
columns, the JVM evaluates them inside its generated code, so rows never travel to a
Python worker and back (the cost that held the pandas UDF at a third of the single-machine
speed). The expressions follow `PersonaModel.distances` and `predict` step by step, so the
labels are the same, ties included:

- squared distance ``(x.x - 2 x.c) + c.c``, floored at 0, then the square root (the
  argmin runs on the rooted distances, as numpy's does);
- the nearest persona is the first one whose distance equals the smallest (numpy's argmin
  keeps the first of equal values);
- margin: the smallest distance of the other personas minus the nearest (inf with one
  persona);
- ``unassigned`` beyond the nearest persona's radius (``<=`` assigns, as in `predict`).

A row with a missing or non-finite feature fails the job with a `DataValidationError`
naming the feature and the ``response_id`` (the message `label.spark_errors` reads back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from persona.features import FEATURE_NAMES
from persona.model import UNASSIGNED_ID, UNASSIGNED_NAME, PersonaModel

ERROR_MARKER = "persona.errors.DataValidationError: "
FINITE_SUMMARY = "respondent features must be finite numbers"


def _sum(terms: list[Any]) -> Any:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _checked_norm(features: list[Any], id_column: str) -> Any:
    """``x.x``, or a raised `DataValidationError` when a feature is null, NaN or infinite."""
    from pyspark.sql import functions as F

    inf = F.lit(float("inf"))

    def bad(col: Any) -> Any:
        return col.isNull() | F.isnan(col) | (F.abs(col) == inf)

    named = list(zip(FEATURE_NAMES, features, strict=True))
    first_bad = F.coalesce(*[F.when(bad(c), F.lit(n)) for n, c in named])
    value = F.coalesce(*[F.when(bad(c), F.coalesce(c.cast("string"), F.lit("null")))
                         for _, c in named])  # fmt: skip
    message = F.concat(
        F.lit(f"{ERROR_MARKER}{FINITE_SUMMARY}\n  - "), first_bad, F.lit(": "), value,
        F.lit(f" for {id_column} "), F.col(id_column).cast("string"), F.lit("\n"),
    )  # fmt: skip
    norm = _sum([col * col for col in features])
    # Cheap test first (one per row): a non-finite feature makes x.x non-finite or null.
    suspect = norm.isNull() | F.isnan(norm) | (norm == inf)
    return F.when(suspect & first_bad.isNotNull(), F.raise_error(message)).otherwise(norm)


def _distances(model: PersonaModel, norm: Any) -> list[Any]:
    """One distance column per persona, computed as `PersonaModel.distances` does."""
    from pyspark.sql import functions as F

    features = [F.col(name).cast("double") for name in model.feature_names]
    sq_norms = np.einsum("ij,ij->i", model.centroids, model.centroids)  # as the model's own
    dist = []
    for centroid, sq_norm in zip(model.centroids, sq_norms, strict=True):
        dot = _sum([col * F.lit(float(c)) for col, c in zip(features, centroid, strict=True)])
        squared = (norm - F.lit(2.0) * dot) + F.lit(float(sq_norm))
        dist.append(F.sqrt(F.greatest(squared, F.lit(0.0))))
    return dist


def _pick(index: Any, values: list[Any]) -> Any:
    """``values[index]`` for a 0-based integer column, as a ``when`` chain."""
    from pyspark.sql import functions as F

    chosen = F.when(index == 0, values[0])
    for i, value in enumerate(values[1:], start=1):
        chosen = chosen.when(index == i, value)
    return chosen


def label_frame_native(frame: Any, model: PersonaModel, id_column: str, keep: list[str]) -> Any:
    """Label a DataFrame with `model` in the JVM (lazy).

    Staged projections (``x.x``, the distances, the nearest, the labels), so each
    intermediate is computed once per row.

    Args:
        frame: A DataFrame with `id_column` and ``x1..x10``.
        model: The nearest-centroid model.
        id_column: The row id (kept first, and named in error messages).
        keep: The other input columns kept before the labels, in order.

    Returns:
        ``keep`` columns, then ``persona_id, persona_name, nearest_persona_id, distance,
        margin, unassigned``.
    """
    from pyspark.sql import functions as F

    k = model.k
    features = [F.col(name).cast("double") for name in model.feature_names]
    extra = [name for name in model.feature_names if name not in keep]
    dist = [F.col(f"_d{i}") for i in range(k)]
    smallest = F.least(*dist) if k > 1 else dist[0]
    first = F.when(dist[0] == F.col("_dist"), F.lit(0))
    for index in range(1, k):
        first = first.when(dist[index] == F.col("_dist"), F.lit(index))
    staged = (
        frame.select(*keep, *extra, _checked_norm(features, id_column).alias("_xx"))
        .select(*keep, *[d.alias(f"_d{i}") for i, d in enumerate(_distances(model, F.col("_xx")))])
        .withColumn("_dist", smallest)
        .withColumn("_nearest", first)
    )
    nearest = F.col("_nearest")
    if k == 1:
        margin = F.lit(float("inf"))
    else:
        others = [F.when(nearest != i, d) for i, d in enumerate(dist)]
        margin = F.least(*others) - F.col("_dist")
    radius = _pick(nearest, [F.lit(float(r)) for r in model.radii])
    assigned = F.col("_dist") <= radius
    ids = [F.lit(i) for i in model.persona_ids]
    names = [F.lit(n) for n in model.persona_names]
    return staged.select(
        *keep,
        F.when(assigned, _pick(nearest, ids)).otherwise(F.lit(UNASSIGNED_ID)).alias("persona_id"),
        F.when(assigned, _pick(nearest, names))
        .otherwise(F.lit(UNASSIGNED_NAME))
        .alias("persona_name"),
        _pick(nearest, ids).alias("nearest_persona_id"),
        F.col("_dist").alias("distance"),
        margin.alias("margin"),
        (~assigned).alias("unassigned"),
    )
