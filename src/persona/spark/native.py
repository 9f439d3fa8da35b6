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

The generated code is kept small on purpose: the JVM does not JIT-compile a method of
more than 8,000 bytes of bytecode (``-XX:-DontCompileHugeMethods`` aside), and Spark puts
a whole stage's per-row work into one method. Per persona lookups are literal arrays
indexed by the nearest persona, and the feature-by-feature search for the bad value runs
only in the failing branch.
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


def _lookup(values: list[Any], index: Any) -> Any:
    """``values[index]`` for a 0-based integer column (one array access, no ``when`` chain)."""
    from pyspark.sql import functions as F

    return F.element_at(F.array(*[F.lit(v) for v in values]), index + 1)


def _checked_norm(features: list[Any], id_column: str) -> Any:
    """``x.x``, or a raised `DataValidationError` when a feature is null, NaN or infinite.

    One comparison per row on the usual path: ``x.x < inf`` (null or NaN compare false).
    ``x.x`` overflows for huge finite features; those rows pass the second test (Spark's
    ``greatest`` skips nulls, hence the null test first, and orders NaN above infinity).
    """
    from pyspark.sql import functions as F

    inf = F.lit(float("inf"))
    norm = _sum([col * col for col in features])
    finite = norm.isNotNull() & (F.greatest(*[F.abs(col) for col in features]) < inf)
    bad = F.array(*[~F.coalesce(F.abs(col) < inf, F.lit(False)) for col in features])
    index = F.array_position(bad, True).cast("int")
    value = F.element_at(F.array(*features), index).cast("string")
    message = F.concat(
        F.lit(f"{ERROR_MARKER}{FINITE_SUMMARY}\n  - "), _lookup(list(FEATURE_NAMES), index - 1),
        F.lit(": "), F.coalesce(value, F.lit("null")), F.lit(f" for {id_column} "),
        F.col(id_column).cast("string"), F.lit("\n"),
    )  # fmt: skip
    return F.when(norm < inf, norm).when(finite, norm).otherwise(F.raise_error(message))


def _distances(model: PersonaModel, norm: Any) -> list[Any]:
    """One distance column per persona, computed as `PersonaModel.distances` does."""
    from pyspark.sql import functions as F

    features = [F.col(name) for name in model.feature_names]
    sq_norms = np.einsum("ij,ij->i", model.centroids, model.centroids)  # as the model's own
    dist = []
    for centroid, sq_norm in zip(model.centroids, sq_norms, strict=True):
        dot = _sum([col * F.lit(float(c)) for col, c in zip(features, centroid, strict=True)])
        squared = (norm - F.lit(2.0) * dot) + F.lit(float(sq_norm))
        dist.append(F.sqrt(F.greatest(squared, F.lit(0.0))))
    return dist


def label_frame_native(frame: Any, model: PersonaModel, id_column: str, keep: list[str]) -> Any:
    """Label a DataFrame with `model` in the JVM (lazy).

    Staged projections (``x.x``, the distances, the nearest, the labels), so each
    intermediate is computed once per row.

    Args:
        frame: A DataFrame with `id_column` and ``x1..x10`` as doubles.
        model: The nearest-centroid model.
        id_column: The row id (kept first, and named in error messages).
        keep: The other input columns kept before the labels, in order.

    Returns:
        ``keep`` columns, then ``persona_id, persona_name, nearest_persona_id, distance,
        margin, unassigned``.
    """
    from pyspark.sql import functions as F

    k = model.k
    features = [F.col(name) for name in model.feature_names]
    extra = [name for name in model.feature_names if name not in keep]
    dist = [F.col(f"_d{i}") for i in range(k)]
    first = F.when(dist[0] == F.col("_dist"), F.lit(0))
    for index in range(1, k):
        first = first.when(dist[index] == F.col("_dist"), F.lit(index))
    staged = (
        frame.select(*keep, *extra, _checked_norm(features, id_column).alias("_xx"))
        .select(*keep, *[d.alias(f"_d{i}") for i, d in enumerate(_distances(model, F.col("_xx")))])
        .withColumn("_dist", F.least(*dist) if k > 1 else dist[0])
        .withColumn("_nearest", first)
    )
    nearest = F.col("_nearest")
    if k == 1:
        margin = F.lit(float("inf"))
    else:
        margin = F.least(*[F.when(nearest != i, d) for i, d in enumerate(dist)]) - F.col("_dist")
    ids = [*model.persona_ids, UNASSIGNED_ID]
    names = [*model.persona_names, UNASSIGNED_NAME]
    assigned = F.col("_dist") <= _lookup([float(r) for r in model.radii], nearest)
    label = F.when(assigned, nearest).otherwise(F.lit(k))
    return staged.select(
        *keep,
        _lookup(ids, label).alias("persona_id"),
        _lookup(names, label).alias("persona_name"),
        _lookup(ids, nearest).alias("nearest_persona_id"),
        F.col("_dist").alias("distance"),
        margin.alias("margin"),
        (~assigned).alias("unassigned"),
    )
