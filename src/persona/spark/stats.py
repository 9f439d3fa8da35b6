"""Persona-fit metrics from per-persona aggregates (pure; no Spark needed).

`monitoring.fit.persona_fit` computes its metrics from every row on one machine. Spark
reduces each side (current month, reference window) to a few numbers per persona (rows,
mean and sample std of every feature, distance sum) and this module turns them into the
same dict with the same formulas, so `monitoring.decide` judges both alike. Differences:
``p95_distance`` is Spark's `percentile_approx` (the policy does not use it); per-persona
groups are the rows *assigned* to a persona (the single-machine path groups by nearest
persona, which differs only for unassigned rows); and the tests that need a second pass
over the rows (``spread``, ``feature_spread``, ``far``) are not computed on Spark yet:
a spread shows there through the ``unassigned`` test only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from persona.features import FEATURE_NAMES
from persona.model import UNASSIGNED_ID
from persona.monitoring import stats as st
from persona.monitoring.fit import MIN_PERSONA_ROWS, PSEUDO_COUNT, gone_tests


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


def _ratio(cur: float | None, ref: float | None) -> float | None:
    if cur is None or ref is None or ref <= 0:
        return None
    return cur / ref


def mix_from_counts(cur: dict[str, int], ref: dict[str, int], bins: list[str]) -> dict[str, Any]:
    """Persona shares, PSI and chi-square test from counts (as `fit.persona_mix`)."""
    c = np.array([cur.get(b, 0) for b in bins], dtype=np.float64)
    r = np.array([ref.get(b, 0) for b in bins], dtype=np.float64)
    cs = (c + PSEUDO_COUNT) / (c.sum() + PSEUDO_COUNT * len(bins))
    rs = (r + PSEUDO_COUNT) / (r.sum() + PSEUDO_COUNT * len(bins))
    psi = float(np.sum((cs - rs) * np.log(cs / rs)))
    used = (c + r) > 0
    chi2, pvalue = 0.0, 1.0
    if used.sum() >= 2 and c.sum() > 0 and r.sum() > 0:
        res = stats.chi2_contingency(np.vstack([c[used], r[used]]), correction=False)
        chi2, pvalue = float(res.statistic), float(res.pvalue)
    return {
        "bins": bins,
        "current_shares": dict(zip(bins, (c / max(c.sum(), 1)).tolist(), strict=True)),
        "reference_shares": dict(zip(bins, (r / max(r.sum(), 1)).tolist(), strict=True)),
        "psi": psi,
        "chi2": chi2,
        "chi2_pvalue": pvalue,
    }


def shifts_from_stats(
    cur: SideStats, ref: SideStats, persona_ids: tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Per-persona location tests from means and stds (as `fit.persona_tests`' location part).

    Returns:
        ``(centroid_shift, tests)``.
    """
    out: dict[str, dict[str, Any]] = {}
    tests: list[dict[str, Any]] = []
    for pid in persona_ids:
        n_c, n_r = cur.counts.get(pid, 0), ref.counts.get(pid, 0)
        entry: dict[str, Any] = {"shift": None, "pvalue": None, "spread_ratio": None,
                                 "spread_pvalue": None, "n_current": n_c,
                                 "n_reference": n_r}  # fmt: skip
        if n_c >= MIN_PERSONA_ROWS and n_r >= MIN_PERSONA_ROWS:
            effect, pvalues = st.welch_moments(
                n_c, cur.means[pid], cur.stds[pid] ** 2, n_r, ref.means[pid], ref.stds[pid] ** 2
            )
            size, size_p, found = st.location_tests(pid, FEATURE_NAMES, effect, pvalues)
            entry.update(shift=size, pvalue=size_p)
            tests += found
        out[pid] = entry
    return out, tests


def fit_from_stats(
    cur: SideStats, ref: SideStats, persona_ids: tuple[str, ...], unassigned_floor: float = 0.001
) -> dict[str, Any]:
    """Every persona-fit metric from the two sides' aggregates (the `fit.persona_fit` dict).

    Args:
        cur: Aggregates of the current month.
        ref: Aggregates of the reference window.
        persona_ids: The model's persona ids, in model order.
        unassigned_floor: Smallest null rate of the ``unassigned`` test.

    Returns:
        The same keys and formulas as `monitoring.fit.persona_fit` (see the module
        docstring for what Spark does not compute).
    """
    shifts, tests = shifts_from_stats(cur, ref, persona_ids)
    measured = {k: v for k, v in shifts.items() if v["shift"] is not None}
    worst = max(measured, key=lambda k: measured[k]["shift"]) if measured else None
    rate = 1.0 - cur.assigned / cur.rows if cur.rows else None
    ref_rate = 1.0 - ref.assigned / ref.rows if ref.rows else None
    if rate is not None and ref_rate is not None:
        p = st.binomial_greater(cur.rows - cur.assigned, cur.rows, max(ref_rate, unassigned_floor))
        tests.append({"kind": "unassigned", "persona": None, "feature": None,
                      "effect": rate - ref_rate, "pvalue": p})  # fmt: skip
    mix = mix_from_counts(cur.counts, ref.counts, list(persona_ids))
    labelled = [*persona_ids, UNASSIGNED_ID]
    total = max(sum(cur.counts.get(b, 0) for b in labelled), 1)
    mix["assigned_shares"] = {b: cur.counts.get(b, 0) / total for b in labelled}
    tests += gone_tests(mix, cur.rows, ref.rows)
    return {
        "unassigned_rate": rate,
        "reference_unassigned_rate": ref_rate,
        "far": None,
        "mean_distance": cur.mean_distance,
        "reference_mean_distance": ref.mean_distance,
        "distance_ratio": _ratio(cur.mean_distance, ref.mean_distance),
        "p95_distance": cur.p95_distance,
        "reference_p95_distance": ref.p95_distance,
        "p95_distance_ratio": _ratio(cur.p95_distance, ref.p95_distance),
        "mix": mix,
        "centroid_shift": shifts,
        "max_centroid_shift": measured[worst]["shift"] if worst else None,
        "max_centroid_shift_persona": worst,
        "max_centroid_shift_pvalue": measured[worst]["pvalue"] if worst else None,
        "tests": tests,
    }
