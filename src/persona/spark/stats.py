"""Persona-fit metrics from per-persona aggregates (pure; no Spark needed).

`monitoring.fit.persona_fit` computes its metrics from every row on one machine. Spark
reduces each side (current month, reference window) to a few numbers per persona (rows,
mean and sample std of every feature, distance sum) and this module turns them into the
same `PersonaFit` with the same formulas, so `monitoring.decide` judges both alike. Differences:
``p95_distance`` is Spark's `percentile_approx` (the policy does not use it); per-persona
groups are the rows *assigned* to a persona (the single-machine path groups by nearest
persona, which differs only for unassigned rows); and the tests that need a second pass
over the rows (``spread``, ``feature_spread``, ``far``) are not computed on Spark yet:
a spread shows there through the ``unassigned`` test only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from persona.features import FEATURE_NAMES
from persona.model import UNASSIGNED_ID
from persona.monitoring import stats as st
from persona.monitoring.fit import (
    MIN_PERSONA_ROWS,
    assemble_fit,
    gone_tests,
    location_tests,
    mix_from_count_arrays,
)
from persona.monitoring.results import FitTest, PersonaFit, PersonaMix, PersonaShift


@dataclass(frozen=True)
class SideStats:
    """The aggregates of one side (current month or reference window).

    Attributes:
        rows: All rows.
        assigned: Rows within a persona radius.
        distance_sum: Sum of the distances of assigned rows.
        p95_distance: Approximate 95th percentile of those distances (None when none).
        counts: Rows per persona id (``unassigned`` included).
        means: Per persona id, the feature means of its (assigned) rows.
        stds: Per persona id, the feature sample standard deviations (ddof=1).
    """

    rows: int
    assigned: int
    distance_sum: float
    p95_distance: float | None
    counts: dict[str, int] = field(default_factory=dict)
    means: dict[str, np.ndarray] = field(default_factory=dict)
    stds: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def mean_distance(self) -> float | None:
        """Mean distance of assigned rows to their persona (None when none)."""
        return self.distance_sum / self.assigned if self.assigned else None


def mix_from_counts(cur: SideStats, ref: SideStats, bins: tuple[str, ...]) -> PersonaMix:
    """The persona mix of two sides' per-persona counts (`fit.mix_from_count_arrays`)."""
    c = np.array([cur.counts.get(b, 0) for b in bins], dtype=np.float64)
    r = np.array([ref.counts.get(b, 0) for b in bins], dtype=np.float64)
    labelled = [*bins, UNASSIGNED_ID]
    assigned = np.array([cur.counts.get(b, 0) for b in labelled], dtype=np.float64)
    return mix_from_count_arrays(c, r, bins, assigned)


def _moments(side: SideStats, pid: str) -> tuple[int, np.ndarray, np.ndarray]:
    return side.counts.get(pid, 0), side.means[pid], side.stds[pid] ** 2


def shifts_from_stats(
    cur: SideStats, ref: SideStats, persona_ids: tuple[str, ...]
) -> tuple[dict[str, PersonaShift], list[FitTest]]:
    """Per-persona location tests from means and stds (`fit.location_tests`, as on rows).

    Returns:
        ``(centroid_shift, tests)``.
    """
    out: dict[str, PersonaShift] = {}
    tests: list[FitTest] = []
    for pid in persona_ids:
        n_c, n_r = cur.counts.get(pid, 0), ref.counts.get(pid, 0)
        out[pid] = PersonaShift(n_c, n_r)
        if n_c >= MIN_PERSONA_ROWS and n_r >= MIN_PERSONA_ROWS:
            size, size_p, found = location_tests(
                pid, FEATURE_NAMES, _moments(cur, pid), _moments(ref, pid)
            )
            out[pid] = PersonaShift(n_c, n_r, shift=size, pvalue=size_p)
            tests += found
    return out, tests


def fit_from_stats(
    cur: SideStats, ref: SideStats, persona_ids: tuple[str, ...], unassigned_floor: float = 0.001
) -> PersonaFit:
    """Every persona-fit metric from the two sides' aggregates (as `fit.persona_fit`).

    Args:
        cur: Aggregates of the current month.
        ref: Aggregates of the reference window.
        persona_ids: The model's persona ids, in model order.
        unassigned_floor: Smallest null rate of the ``unassigned`` test.

    Returns:
        The same measurements and formulas as `monitoring.fit.persona_fit` (see the module
        docstring for what Spark does not compute).
    """
    shifts, tests = shifts_from_stats(cur, ref, persona_ids)
    rate = 1.0 - cur.assigned / cur.rows if cur.rows else None
    ref_rate = 1.0 - ref.assigned / ref.rows if ref.rows else None
    if rate is not None and ref_rate is not None:
        p = st.binomial_greater(cur.rows - cur.assigned, cur.rows, max(ref_rate, unassigned_floor))
        tests.append(FitTest("unassigned", None, None, rate - ref_rate, p))
    mix = mix_from_counts(cur, ref, persona_ids)
    tests += gone_tests(mix, cur.rows, ref.rows)
    distances = (cur.mean_distance, ref.mean_distance, cur.p95_distance, ref.p95_distance)
    return assemble_fit((rate, ref_rate), distances, mix, shifts, tests)
