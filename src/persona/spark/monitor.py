"""The monthly monitoring statistics on Spark, judged by the single-machine policy.

For a month of a Parquet dataset against its reference months (default: the champion's
training months, as `persona monitor`), the labelled rows of both sides are persisted
(memory, spilling to disk) and reduced in a few passes; only aggregates reach the driver:

1. The ``far`` threshold: the m-th largest reference distance to the nearest persona,
   m = `stats.tail_rows` (`FAR_TAIL_SHARE`, reference rows), from the m largest values
   (0.2 % of the reference by default: the only values collected). A row within it fits
   its nearest persona; a row beyond it fits none (`fit.persona_fit`).
1b. The current rows beyond it per nearest persona (count, feature sums and squares:
   `beyond_stats`) give the segment's centre, if they gather beside one persona
   (`fit.segment_centre`); then a row within the threshold but nearer that centre than
   to its persona fits none either (``near``), in every pass below.
2. One aggregation (`rollup` by side and nearest persona): rows per nearest persona
   within the threshold and rows assigned per persona (the persona mix, ``gone``, the
   unassigned rate; per reference month too, for the mix test's overdispersion), the
   distance sum of assigned rows, an approximate p95 distance, per
   persona the mean and sample std of every feature of its rows within the threshold
   (``shift``, ``feature_shift``), and the rows beyond it with their feature sums
   (``far``, the segment description), and per side the ``near`` rows.
3. A second aggregation with the per-persona means of pass 2 (a broadcast join): per
   persona and side, over the rows within the threshold, the mean and sample variance of
   each feature's scaled absolute deviation from the mean and of each row's scaled
   distance to the mean row (``spread``, ``feature_spread``).

Per side, a seeded sample of at most `DRIFT_SAMPLE_ROWS` rows (the rows with the smallest
``xxhash64(response_id, seed)``; every row when the side is that small) goes through
`monitoring.drift.data_drift`: Evidently's K-S per feature, the code the single-machine
check runs. The `monitoring.CheckResult` built from both goes to `monitoring.decide`.

The persona-fit tests (which alone decide the verdict) equal the single-machine check's up
to floating-point summation order, on any size (tested: p-values within 1e-9 relative);
the K-S p-values are equal on data within the sample limit, above it the samples differ
from numpy's seeded sample (the K-S report only informs).
"""

from __future__ import annotations

import dataclasses
import time
from functools import reduce
from operator import add
from typing import Any

import numpy as np

from persona.errors import MonitoringError, NotIngestedError
from persona.features import FEATURE_NAMES
from persona.monitoring import CheckResult, decide
from persona.monitoring.drift import STATTEST, data_drift
from persona.monitoring.fit import SpreadMoments, segment_centre
from persona.monitoring.stats import TailExcess, tail_excess_from_counts, tail_rows
from persona.months import Month, Window
from persona.settings import Settings
from persona.spark.label import ID_COLUMN, MONTH_COLUMN, label_frame, read_dataset, spark_errors
from persona.spark.stats import SideStats, comparable_personas, fit_from_stats

_P95_ACCURACY = 10_000
NEAREST = "nearest_persona_id"


def _core(threshold: float, centre: np.ndarray | None) -> tuple[Any, Any]:
    """``(within, near)`` columns: within the ``far`` threshold; of those, nearer `centre`.

    A row fits its nearest persona when it is within and not near (`fit.persona_fit`).
    """
    from pyspark.sql import functions as F

    within = F.col("distance") <= F.lit(threshold)
    if centre is None:
        return within, F.lit(False)
    square = reduce(
        add, [(F.col(c) - F.lit(float(v))) ** 2 for c, v in zip(FEATURE_NAMES, centre, strict=True)]
    )
    return within, within & (square < F.col("distance") * F.col("distance"))


def beyond_stats(
    labeled: Any, threshold: float
) -> tuple[dict[str, tuple[int, np.ndarray]], dict[str, float]]:
    """Current rows beyond the threshold per nearest persona: count, feature sums, squares.

    What `fit.segment_centre` needs (pass 2a): only one row per persona reaches the driver.
    """
    from pyspark.sql import functions as F

    far = labeled.where((F.col("side") == "current") & (F.col("distance") > F.lit(threshold)))
    aggs = [
        F.count(F.lit(1)).alias("rows"),
        *[F.sum(F.col(c)).alias(f"far_{c}") for c in FEATURE_NAMES],
        F.sum(reduce(add, [F.col(c) * F.col(c) for c in FEATURE_NAMES])).alias("squares"),
    ]
    rows = far.groupBy(NEAREST).agg(*aggs).collect()
    beyond = {r[NEAREST]: (int(r["rows"]), np.nan_to_num(_vector(r, "far"))) for r in rows}
    squares = {r[NEAREST]: float(r["squares"] or 0.0) for r in rows}
    return beyond, squares


def side_stats(
    labeled: Any, sides: tuple[str, ...], threshold: float, centre: np.ndarray | None = None
) -> dict[str, SideStats]:
    """Aggregate a labelled frame with a ``side`` column into `SideStats` per side (pass 2b).

    Args:
        labeled: Labels with features (`label_frame(..., keep_features=True)`) and ``side``.
        sides: The side names to return (a side without rows gets zeros).
        threshold: The ``far`` threshold (`far_threshold`): rows within it fit a persona.
        centre: The segment's centre (`fit.segment_centre`), if any: rows within the
            threshold but nearer it than to their persona fit none (`SideStats.near`).

    Returns:
        ``{side: SideStats}`` without `SideStats.spreads` (pass 3 adds them).
    """
    from pyspark.sql import functions as F

    assigned = ~F.col("unassigned")
    within, near = _core(threshold, centre)
    core = within & ~near
    aggs = [
        F.count(F.lit(1)).alias("rows"),
        F.sum(within.cast("long")).alias("within"),
        F.sum(core.cast("long")).alias("core"),
        F.sum(near.cast("long")).alias("near"),
        F.sum(assigned.cast("long")).alias("assigned"),
        F.sum(F.when(assigned, F.col("distance"))).alias("distance_sum"),
        F.percentile_approx(F.when(assigned, F.col("distance")), 0.95, _P95_ACCURACY).alias("p95"),
        *[F.avg(F.when(core, F.col(c))).alias(f"mean_{c}") for c in FEATURE_NAMES],
        *[F.stddev_samp(F.when(core, F.col(c))).alias(f"std_{c}") for c in FEATURE_NAMES],
        *[F.sum(F.when(~within, F.col(c))).alias(f"far_{c}") for c in FEATURE_NAMES],
    ]
    rows = labeled.rollup("side", NEAREST).agg(*aggs).collect()
    per_month = (
        labeled.where(core & (F.col("side") == "reference"))
        .groupBy(MONTH_COLUMN, NEAREST)
        .count()
        .collect()
    )
    month_counts: dict[str, dict[str, int]] = {}
    for r in per_month:
        month_counts.setdefault(str(r[MONTH_COLUMN]), {})[r[NEAREST]] = int(r["count"])
    out: dict[str, SideStats] = {}
    for side in sides:
        total = [r for r in rows if r["side"] == side and r[NEAREST] is None]
        per = [r for r in rows if r["side"] == side and r[NEAREST] is not None]
        if not total:
            out[side] = SideStats(0, 0, 0.0, None)
            continue
        t = total[0]
        out[side] = SideStats(
            rows=int(t["rows"]),
            assigned=int(t["assigned"] or 0),
            distance_sum=float(t["distance_sum"] or 0.0),
            p95_distance=None if t["p95"] is None else float(t["p95"]),
            counts={r[NEAREST]: int(r["core"] or 0) for r in per},
            assigned_counts={r[NEAREST]: int(r["assigned"] or 0) for r in per},
            means={r[NEAREST]: _vector(r, "mean") for r in per},
            stds={r[NEAREST]: _vector(r, "std") for r in per},
            beyond={r[NEAREST]: _beyond(r) for r in per},
            month_counts=month_counts if side == "reference" else {},
            near=int(t["near"] or 0),
        )
    return out


def far_threshold(labeled: Any, m: int) -> float:
    """The m-th largest reference distance to the nearest persona (pass 1).

    Args:
        labeled: Labels with a ``side`` column.
        m: The rank from the top (`stats.tail_rows`; at most the reference rows).

    Returns:
        The threshold of the ``far`` test (only the m largest values reach the driver).
    """
    from pyspark.sql import functions as F

    top = (
        labeled.where(F.col("side") == "reference")
        .select("distance")
        .orderBy(F.col("distance").desc())
        .limit(m)
        .collect()
    )
    return float(top[-1]["distance"])


def deviation_stats(
    spark: Any,
    labeled: Any,
    sides: dict[str, SideStats],
    persona_ids: tuple[str, ...],
    threshold: float,
    centre: np.ndarray | None = None,
) -> dict[str, dict[str, SpreadMoments]]:
    """The spread moments per side and persona, over the rows within `threshold` (pass 3).

    Each row is joined with its side's mean of its nearest persona (a broadcast table of
    at most 2 x personas rows, for the personas tested on both sides); the deviations are
    scaled as `monitoring.stats.spread_deviations` and `row_spread` scale them.

    Args:
        spark: The SparkSession.
        labeled: Labels with features and a ``side`` column.
        sides: Pass 2's ``{"current": ..., "reference": ...}``.
        persona_ids: The model's persona ids.
        threshold: The ``far`` threshold (`far_threshold`).
        centre: The segment's centre, if any (`side_stats`).

    Returns:
        ``{side: {persona id: SpreadMoments}}``.
    """
    from pyspark.sql import functions as F

    cur, ref = sides["current"], sides["reference"]
    groups = [
        (side, pid, float(sides[side].counts[pid]), *sides[side].means[pid].tolist())
        for side in ("current", "reference")
        for pid in comparable_personas(cur, ref, persona_ids)
    ]
    schema = f"side string, {NEAREST} string, _n double, " + ", ".join(
        f"_m_{c} double" for c in FEATURE_NAMES
    )
    means = spark.createDataFrame(groups, schema)
    within, near = _core(threshold, centre)
    core = labeled.where(within & ~near)
    joined = core.join(F.broadcast(means), ["side", NEAREST], "inner")
    n = F.col("_n")
    diff = {c: F.col(c) - F.col(f"_m_{c}") for c in FEATURE_NAMES}
    scale = F.sqrt(n / (n - 1.0))
    deviation = {c: F.abs(d) * scale for c, d in diff.items()}
    row = F.sqrt(reduce(add, [d * d for d in diff.values()]) * n / (n - 1.0))
    aggs = [
        F.count(n).alias("n"),
        F.avg(row).alias("row_mean"),
        F.var_samp(row).alias("row_var"),
        *[F.avg(d).alias(f"mean_{c}") for c, d in deviation.items()],
        *[F.var_samp(d).alias(f"var_{c}") for c, d in deviation.items()],
    ]
    rows = joined.groupBy("side", NEAREST).agg(*aggs).collect()
    spreads: dict[str, dict[str, SpreadMoments]] = {"current": {}, "reference": {}}
    for r in rows:
        if r["n"]:
            spreads[r["side"]][r[NEAREST]] = SpreadMoments(
                int(r["n"]),
                _vector(r, "mean"),
                _vector(r, "var"),
                float(r["row_mean"]),
                float(r["row_var"]),
            )
    return spreads


def fit_passes(
    spark: Any, labeled: Any, model: Any, tail: float
) -> tuple[dict[str, SideStats], TailExcess | None, str | None]:
    """Passes 1-3: each side's `SideStats` with its spreads, and the ``far`` test.

    Args:
        spark: The SparkSession.
        labeled: Labels with features and a ``side`` column.
        model: The `PersonaModel` (persona ids and centroids).
        tail: `FAR_TAIL_SHARE`: the reference share beyond the ``far`` threshold.

    Returns:
        ``(sides, far test, the persona a segment sits beside or None)``; the test is None
        when the current month has no rows, and both sides are empty when the reference
        has none (the caller raises).
    """
    from pyspark.sql import functions as F

    persona_ids = tuple(model.persona_ids)
    n_ref = labeled.where(F.col("side") == "reference").count()
    if n_ref == 0:
        empty = SideStats(0, 0, 0.0, None)
        return {"current": empty, "reference": empty}, None, None
    m = tail_rows(tail, n_ref)
    threshold = far_threshold(labeled, m)
    far_rows, squares = beyond_stats(labeled, threshold)
    centroids = dict(zip(persona_ids, np.asarray(model.centroids), strict=True))
    found = segment_centre(
        {p: far_rows[p] for p in persona_ids if p in far_rows}, squares, centroids
    )
    centre = None if found is None else found[1]
    sides = side_stats(labeled, ("current", "reference"), threshold, centre)
    cur = sides["current"]
    if not cur.rows:
        return sides, None, None
    spreads = deviation_stats(spark, labeled, sides, persona_ids, threshold, centre)
    with_spreads = {
        side: dataclasses.replace(stats, spreads=spreads[side]) for side, stats in sides.items()
    }
    beyond = sum(count for count, _ in cur.beyond.values())
    far = tail_excess_from_counts(threshold, m, beyond, cur.rows, n_ref)
    return with_spreads, far, None if found is None else found[0]


def _beyond(row: Any) -> tuple[int, np.ndarray]:
    return int(row["rows"]) - int(row["within"] or 0), np.nan_to_num(_vector(row, "far"))


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
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    model = loaded.model
    persona_ids = tuple(model.persona_ids)
    frame = frame.where(F.col(MONTH_COLUMN).isin([month, *reference_months]))
    labeled = label_frame(frame, loaded, "arrays", keep_features=True).withColumn(
        "side", F.when(F.col(MONTH_COLUMN) == month, "current").otherwise("reference")
    )
    labeled = labeled.persist(StorageLevel.MEMORY_AND_DISK)  # labelled once, read 6 times
    try:
        with spark_errors(f"monitoring {month}"):
            sides, far, beside = fit_passes(spark, labeled, model, settings.far_tail_share)
            if sides["reference"].rows == 0:
                raise NotIngestedError(reference_months.months, "the reference window")
            cur, ref = sides["current"], sides["reference"]
            drift = None
            if cur.rows >= settings.min_month_rows:
                limit, seed = settings.drift_sample_rows, settings.random_seed
                cur_x = seeded_sample(labeled.where("side = 'current'"), cur.rows, limit, seed)
                ref_x = seeded_sample(labeled.where("side = 'reference'"), ref.rows, limit,
                                      seed + 1)  # fmt: skip
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
    finally:
        labeled.unpersist()
    floor = 1.0 - settings.radius_quantile
    fit = fit_from_stats(cur, ref, persona_ids, far, floor, beside) if cur.rows else None
    params = {
        "stattest": STATTEST,
        "feature_threshold": settings.drift_feature_threshold,
        "sample_rows": settings.drift_sample_rows,
        "min_month_rows": settings.min_month_rows,
        "persona_fit_alpha": settings.persona_fit_alpha,
        "far_tail_share": settings.far_tail_share,
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
