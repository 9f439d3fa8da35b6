"""Persona-fit metrics from per-persona aggregates (pure; no Spark needed).

`monitoring.fit.persona_fit` computes its metrics from every row on one machine. Spark
reduces each side (current month, reference window) to a few numbers per persona and this
module turns them into the same `PersonaFit` with the same formulas (the from-moments and
from-counts functions that the row path calls too), so `monitoring.decide` judges both alike:

- the m-th largest reference distance (`fit.core_threshold`): a row within it fits its
  nearest persona, a row beyond it fits none;
- rows per nearest persona within the threshold, rows assigned per persona, the distance
  sum of assigned rows: the mix, ``gone``, ``unassigned``; the reference's rows per month
  and nearest persona within the threshold: the mix test's between-month overdispersion;
- per persona, the mean and sample std of every feature of its rows within the
  threshold: ``shift``, ``feature_shift`` (`fit.location_tests`);
- per persona, the mean and sample variance of the deviations of those rows from their
  mean (a second pass over the rows with the means of the first): ``spread``,
  ``feature_spread`` (`fit.spread_tests`);
- per nearest persona, the current rows beyond the threshold, their feature sums and
  squares: ``far`` (`monitoring.stats.tail_excess_from_counts`), the segment's centre
  (`fit.segment_centre`) and description (`fit.describe_segment`);
- with a segment centre: per side, the rows within the threshold nearer it than to their
  persona (``near``, `fit.near_test`); they fit no persona.

The one difference: ``p95_distance`` is Spark's `percentile_approx` (the policy does not
use it). Everything else equals the single-machine result up to floating-point summation
order (relative differences around 1e-13).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from persona.features import FEATURE_NAMES
from persona.monitoring import stats as st
from persona.monitoring.fit import (
    MIN_PERSONA_ROWS,
    SpreadMoments,
    assemble_fit,
    describe_segment,
    gone_tests,
    location_tests,
    mix_from_count_arrays,
    near_test,
    spread_tests,
)
from persona.monitoring.results import FitTest, PersonaFit, PersonaMix, PersonaShift
from persona.monitoring.stats import TailExcess


@dataclass(frozen=True)
class SideStats:
    """The aggregates of one side (current month or reference window).

    Attributes:
        rows: All rows.
        assigned: Rows within a persona radius.
        distance_sum: Sum of the distances of assigned rows.
        p95_distance: Approximate 95th percentile of those distances (None when none).
        counts: Rows per nearest persona id within the ``far`` threshold (assigned or not).
        assigned_counts: Rows assigned per persona id.
        means: Per nearest persona id, the feature means of its rows within the threshold.
        stds: Per nearest persona id, their feature sample standard deviations (ddof=1).
        spreads: Per nearest persona id with at least `MIN_PERSONA_ROWS` rows on both
            sides, the moments of its rows' deviations from its mean.
        beyond: Per nearest persona id, the rows beyond the threshold and their feature
            sums.
        month_counts: Per month, rows per nearest persona id within the threshold (the
            reference side: the between-month overdispersion of the mix test).
        near: Rows within the threshold but nearer the segment's centre than to their
            persona (`fit.segment_centre`; 0 without one). They fit no persona: the
            counts, moments and month counts above leave them out.
    """

    rows: int
    assigned: int
    distance_sum: float
    p95_distance: float | None
    counts: dict[str, int] = field(default_factory=dict)
    assigned_counts: dict[str, int] = field(default_factory=dict)
    means: dict[str, np.ndarray] = field(default_factory=dict)
    stds: dict[str, np.ndarray] = field(default_factory=dict)
    spreads: dict[str, SpreadMoments] = field(default_factory=dict)
    beyond: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)
    month_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    near: int = 0

    @property
    def mean_distance(self) -> float | None:
        """Mean distance of assigned rows to their persona (None when none)."""
        return self.distance_sum / self.assigned if self.assigned else None


def comparable_personas(cur: SideStats, ref: SideStats, persona_ids: tuple[str, ...]) -> list[str]:
    """The personas with at least `MIN_PERSONA_ROWS` nearest rows on both sides, in order."""
    enough = MIN_PERSONA_ROWS
    return [p for p in persona_ids if min(cur.counts.get(p, 0), ref.counts.get(p, 0)) >= enough]


def mix_from_counts(cur: SideStats, ref: SideStats, bins: tuple[str, ...]) -> PersonaMix:
    """The persona mix of two sides' per-persona counts (`fit.mix_from_count_arrays`)."""
    c = np.array([cur.counts.get(b, 0) for b in bins], dtype=np.float64)
    r = np.array([ref.counts.get(b, 0) for b in bins], dtype=np.float64)
    assigned = [cur.assigned_counts.get(b, 0) for b in bins] + [cur.rows - cur.assigned]
    months = None
    if ref.month_counts:
        months = np.array(
            [[ref.month_counts[m].get(b, 0) for b in bins] for m in sorted(ref.month_counts)],
            dtype=np.float64,
        )
    return mix_from_count_arrays(c, r, bins, np.array(assigned, dtype=np.float64), months)


def _moments(side: SideStats, pid: str) -> tuple[int, np.ndarray, np.ndarray]:
    return side.counts[pid], side.means[pid], side.stds[pid] ** 2


def shifts_from_stats(
    cur: SideStats, ref: SideStats, persona_ids: tuple[str, ...]
) -> tuple[dict[str, PersonaShift], list[FitTest]]:
    """Per-persona location and spread tests from moments (`fit.persona_tests`, as on rows).

    Returns:
        ``(centroid_shift, tests)``, the tests in `fit.persona_fit`'s order.
    """
    out = {pid: PersonaShift(cur.counts.get(pid, 0), ref.counts.get(pid, 0)) for pid in persona_ids}
    tests: list[FitTest] = []
    for pid in comparable_personas(cur, ref, persona_ids):
        size, size_p, found = location_tests(
            pid, FEATURE_NAMES, _moments(cur, pid), _moments(ref, pid)
        )
        ratio, ratio_p, spread = spread_tests(
            pid, FEATURE_NAMES, cur.spreads[pid], ref.spreads[pid]
        )
        out[pid] = PersonaShift(cur.counts[pid], ref.counts[pid], size, size_p, ratio, ratio_p)
        tests += found + spread
    return out, tests


def fit_from_stats(
    cur: SideStats,
    ref: SideStats,
    persona_ids: tuple[str, ...],
    far: TailExcess | None,
    unassigned_floor: float = 0.001,
    beside: str | None = None,
) -> PersonaFit:
    """Every persona-fit metric from the two sides' aggregates (as `fit.persona_fit`).

    Args:
        cur: Aggregates of the current month.
        ref: Aggregates of the reference window.
        persona_ids: The model's persona ids, in model order.
        far: The ``far`` test (`stats.tail_excess_from_counts`); None when not measured.
        unassigned_floor: Smallest null rate of the ``unassigned`` test.
        beside: The persona a segment sits beside (`fit.segment_centre`), if any: the
            ``near`` test is then run on `SideStats.near` of both sides.

    Returns:
        The same measurements, formulas and test order as `monitoring.fit.persona_fit`
        (only ``p95_distance`` is approximate).
    """
    shifts, tests = shifts_from_stats(cur, ref, persona_ids)
    if far is not None:
        tests.append(FitTest("far", None, None, far.excess, far.pvalue))
    if beside is not None:
        tests.append(near_test(beside, cur.near, cur.rows, ref.near, ref.rows))
    un_c, un_r = cur.rows - cur.assigned, ref.rows - ref.assigned
    rate = un_c / cur.rows if cur.rows else None
    ref_rate = un_r / ref.rows if ref.rows else None
    if rate is not None and ref_rate is not None:
        p = st.binomial_greater(un_c, cur.rows, max(ref_rate, unassigned_floor))
        tests.append(FitTest("unassigned", None, None, rate - ref_rate, p))
    mix = mix_from_counts(cur, ref, persona_ids)
    tests += gone_tests(mix, sum(cur.counts.values()), sum(ref.counts.values()))
    distances = (cur.mean_distance, ref.mean_distance, cur.p95_distance, ref.p95_distance)
    segment = None
    if cur.rows:
        none = (0, np.zeros(len(FEATURE_NAMES)))
        beyond = {pid: cur.beyond.get(pid, none) for pid in persona_ids}
        reference = {
            pid: (ref.means[pid], ref.stds[pid])
            for pid in persona_ids
            if ref.counts.get(pid, 0) >= 2
        }
        segment = describe_segment(beyond, reference, FEATURE_NAMES, cur.rows)
    return assemble_fit((rate, ref_rate), distances, mix, shifts, tests, far, segment)
