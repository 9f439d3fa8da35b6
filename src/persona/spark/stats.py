"""Persona-fit metrics from per-persona aggregates (pure; no Spark needed).

`monitoring.fit.persona_fit` computes its metrics from every row on one machine. Spark
reduces each side (current month, reference window) to a few numbers per persona (rows,
mean and sample std of every feature, distance sum) and this module turns them into the
same dict with the same formulas, so `monitoring.decide` judges both alike. The only
difference: ``p95_distance`` is Spark's `percentile_approx` (the policy does not use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from persona.model import UNASSIGNED_ID
from persona.monitoring.fit import MIN_PERSONA_ROWS, PSEUDO_COUNT


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
) -> dict[str, dict[str, Any]]:
    """Per-persona centroid shift in reference std and its p-value (as `fit.centroid_shifts`)."""
    out: dict[str, dict[str, Any]] = {}
    for pid in persona_ids:
        n_c, n_r = cur.counts.get(pid, 0), ref.counts.get(pid, 0)
        entry: dict[str, Any] = {"shift": None, "pvalue": None, "n_current": n_c,
                                 "n_reference": n_r}  # fmt: skip
        if n_c >= MIN_PERSONA_ROWS and n_r >= MIN_PERSONA_ROWS:
            std = np.maximum(ref.stds[pid], 1e-9)
            z = (cur.means[pid] - ref.means[pid]) / std
            shift_sq = float(np.sum(z * z))
            stat = shift_sq / (1.0 / n_c + 1.0 / n_r)
            entry["shift"] = float(np.sqrt(shift_sq))
            entry["pvalue"] = float(stats.chi2.sf(stat, df=len(z)))
        out[pid] = entry
    return out


def fit_from_stats(cur: SideStats, ref: SideStats, persona_ids: tuple[str, ...]) -> dict[str, Any]:
    """Every persona-fit metric from the two sides' aggregates (the `fit.persona_fit` dict).

    Args:
        cur: Aggregates of the current month.
        ref: Aggregates of the reference window.
        persona_ids: The model's persona ids, in model order.

    Returns:
        The same keys and formulas as `monitoring.fit.persona_fit`.
    """
    shifts = shifts_from_stats(cur, ref, persona_ids)
    measured = {k: v for k, v in shifts.items() if v["shift"] is not None}
    worst = max(measured, key=lambda k: measured[k]["shift"]) if measured else None
    return {
        "unassigned_rate": 1.0 - cur.assigned / cur.rows if cur.rows else None,
        "reference_unassigned_rate": 1.0 - ref.assigned / ref.rows if ref.rows else None,
        "mean_distance": cur.mean_distance,
        "reference_mean_distance": ref.mean_distance,
        "distance_ratio": _ratio(cur.mean_distance, ref.mean_distance),
        "p95_distance": cur.p95_distance,
        "reference_p95_distance": ref.p95_distance,
        "p95_distance_ratio": _ratio(cur.p95_distance, ref.p95_distance),
        "mix": mix_from_counts(cur.counts, ref.counts, [*persona_ids, UNASSIGNED_ID]),
        "centroid_shift": shifts,
        "max_centroid_shift": measured[worst]["shift"] if worst else None,
        "max_centroid_shift_persona": worst,
        "max_centroid_shift_pvalue": measured[worst]["pvalue"] if worst else None,
    }
