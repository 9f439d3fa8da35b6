"""The monthly monitoring statistics on Spark, judged by the single-machine policy.

For a month of a Parquet dataset against its reference months (default: the champion's
training months, as `persona monitor`):

1. One labelling pass over both sides with one aggregation (`rollup` by side and persona):
   rows per persona (the persona mix and the unassigned rate), the distance sum of assigned
   rows, an approximate p95 distance, and per persona the mean and sample std of every
   feature (the centroid shift). Only these few numbers reach the driver.
2. Per side, a seeded sample of at most `DRIFT_SAMPLE_ROWS` rows (the rows with the
   smallest ``xxhash64(response_id, seed)``; every row when the side is that small) is
   collected and goes through `monitoring.drift.data_drift`: Evidently's K-S per feature,
   the code the single-machine check runs.
3. A `monitoring.CheckResult` built from both goes to `monitoring.decide`.

On data within the sample limit the verdict, the K-S p-values and the fit metrics equal
the single-machine check's (tested); above it the K-S samples differ from numpy's seeded
sample, so p-values differ while the verdict rule is the same.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from persona.errors import MonitoringError, NotIngestedError
from persona.features import FEATURE_NAMES
from persona.monitoring import CheckResult, decide
from persona.monitoring.drift import STATTEST, data_drift
from persona.months import Month, Window
from persona.settings import Settings
from persona.spark.label import ID_COLUMN, MONTH_COLUMN, label_frame, read_dataset, spark_errors
from persona.spark.stats import SideStats, fit_from_stats

_P95_ACCURACY = 10_000


def side_stats(labeled: Any, sides: tuple[str, ...]) -> dict[str, SideStats]:
    """Aggregate a labelled frame with a ``side`` column into `SideStats` per side.

    Args:
        labeled: Labels with features (`label_frame(..., keep_features=True)`) and ``side``.
        sides: The side names to return (a side without rows gets zeros).

    Returns:
        ``{side: SideStats}``.
    """
    from pyspark.sql import functions as F

    assigned = ~F.col("unassigned")
    aggs = [
        F.count(F.lit(1)).alias("rows"),
        F.sum(assigned.cast("long")).alias("assigned"),
        F.sum(F.when(assigned, F.col("distance"))).alias("distance_sum"),
        F.percentile_approx(F.when(assigned, F.col("distance")), 0.95, _P95_ACCURACY).alias("p95"),
        *[F.avg(c).alias(f"mean_{c}") for c in FEATURE_NAMES],
        *[F.stddev_samp(c).alias(f"std_{c}") for c in FEATURE_NAMES],
    ]
    rows = labeled.rollup("side", "persona_id").agg(*aggs).collect()
    out: dict[str, SideStats] = {}
    for side in sides:
        total = [r for r in rows if r["side"] == side and r["persona_id"] is None]
        per = [r for r in rows if r["side"] == side and r["persona_id"] is not None]
        if not total:
            out[side] = SideStats(0, 0, 0.0, None)
            continue
        t = total[0]
        out[side] = SideStats(
            rows=int(t["rows"]),
            assigned=int(t["assigned"] or 0),
            distance_sum=float(t["distance_sum"] or 0.0),
            p95_distance=None if t["p95"] is None else float(t["p95"]),
            counts={r["persona_id"]: int(r["rows"]) for r in per},
            means={r["persona_id"]: _vector(r, "mean") for r in per},
            stds={r["persona_id"]: _vector(r, "std") for r in per},
        )
    return out


def _vector(row: Any, prefix: str) -> np.ndarray:
    return np.array(
        [np.nan if row[f"{prefix}_{c}"] is None else row[f"{prefix}_{c}"] for c in FEATURE_NAMES],
        dtype=np.float64,
    )


def seeded_sample(frame: Any, rows: int, limit: int, seed: int) -> np.ndarray:
    """At most `limit` rows of a side's features: all when small, else a seeded hash sample.

    Args:
        frame: Respondents (``response_id``, features).
        rows: How many rows the frame has.
        limit: The row limit (`DRIFT_SAMPLE_ROWS`).
        seed: Seed of the hash.

    Returns:
        float64 ``(min(rows, limit), 10)`` (the only rows collected on the driver).
    """
    from pyspark.sql import functions as F

    if rows > limit:
        frame = frame.orderBy(F.xxhash64(F.col(ID_COLUMN), F.lit(seed))).limit(limit)
    sample = frame.select(*FEATURE_NAMES).toPandas()
    return np.ascontiguousarray(sample.to_numpy(dtype=np.float64)).reshape(-1, len(FEATURE_NAMES))


def check_dataset(
    spark: Any,
    settings: Settings,
    frame: Any,
    month: Month,
    reference_months: Window,
    loaded: Any,
) -> CheckResult:
    """The `monitoring.check` result of a month against reference months, computed on Spark.

    Args:
        spark: The SparkSession.
        settings: Thresholds, `DRIFT_SAMPLE_ROWS`, `MIN_MONTH_ROWS`, `RANDOM_SEED`.
        frame: Respondents of (at least) the months involved (`read_dataset`).
        month: The current month.
        reference_months: The reference window.
        loaded: The `registry.LoadedModel` that labels both sides.

    Returns:
        The check result (no Evidently snapshot is kept).

    Raises:
        NotIngestedError: The reference window has no rows.
    """
    from pyspark.sql import functions as F

    model = loaded.model
    months = [month, *reference_months]
    frame = frame.where(F.col(MONTH_COLUMN).isin(months)).withColumn(
        "side", F.when(F.col(MONTH_COLUMN) == month, "current").otherwise("reference")
    )
    labeled = label_frame(frame.drop("side"), loaded, "arrays", keep_features=True)
    labeled = labeled.withColumn(
        "side", F.when(F.col(MONTH_COLUMN) == month, "current").otherwise("reference")
    )
    with spark_errors(f"monitoring {month}"):
        sides = side_stats(labeled, ("current", "reference"))
        cur, ref = sides["current"], sides["reference"]
        if ref.rows == 0:
            raise NotIngestedError(reference_months.months, "the reference window")
        drift = None
        if cur.rows >= settings.min_month_rows:
            limit, seed = settings.drift_sample_rows, settings.random_seed
            cur_x = seeded_sample(frame.where("side = 'current'"), cur.rows, limit, seed)
            ref_x = seeded_sample(frame.where("side = 'reference'"), ref.rows, limit, seed + 1)
            drift = data_drift(
                cur_x,
                ref_x,
                sample_rows_limit=limit,
                threshold=settings.drift_feature_threshold,
                drift_share=settings.drift_share_retrain,
                seed=seed,
                features=tuple(model.feature_names),
            )
            drift = dataclasses.replace(drift, n_current=cur.rows, n_reference=ref.rows,
                                        snapshot=None)  # fmt: skip
    floor = 1.0 - settings.radius_quantile
    fit = fit_from_stats(cur, ref, tuple(model.persona_ids), floor) if cur.rows else None
    params = {
        "stattest": STATTEST,
        "feature_threshold": settings.drift_feature_threshold,
        "sample_rows": settings.drift_sample_rows,
        "min_month_rows": settings.min_month_rows,
        "engine": "spark",
    }
    return CheckResult(cur.rows, ref.rows, drift, fit, settings.random_seed, params)


def monitor_dataset(
    spark: Any,
    settings: Settings,
    input_path: str,
    month: Month,
    reference_months: Window | None = None,
    loaded: Any = None,
) -> dict[str, Any]:
    """Check a month of a Parquet dataset on Spark and decide with `monitoring.decide`.

    Args:
        spark: The SparkSession.
        settings: Model source, thresholds.
        input_path: Parquet respondents with a ``survey_month`` column (local or ``gs://``).
        month: The month to check.
        reference_months: The reference window; default the champion's training months.
        loaded: A `registry.LoadedModel`; default the `MODEL_ALIAS` version.

    Returns:
        ``month, reference_months, model_name, model_version, verdict, reasons, check,
        seconds, engine``.

    Raises:
        MonitoringError: No reference window given and the champion has none.
        NotIngestedError: The reference window has no rows.
    """
    started = time.perf_counter()
    refs = reference_months
    if not refs:
        from persona.registry import champion_reference_months

        champion = champion_reference_months(settings)  # a registry tag: an edge
        if not champion:
            raise MonitoringError("no reference months: pass --reference (e.g. 2025-01,2025-02)")
        refs = Window.of(champion)
    if loaded is None:
        from persona.registry.versions import load_model_for_serving

        loaded = load_model_for_serving(settings)
    frame = read_dataset(spark, input_path)
    result = check_dataset(spark, settings, frame, month, refs, loaded)
    decision = decide(result, settings.policy)
    return {
        "month": month,
        "reference_months": refs.to_list(),
        "model_name": loaded.name,
        "model_version": str(loaded.version),
        "verdict": decision.verdict,
        "reasons": decision.reasons,
        "check": result.to_dict(),
        "seconds": round(time.perf_counter() - started, 3),
        "engine": "spark",
    }
