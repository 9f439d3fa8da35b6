"""Persona-fit metrics: what a generic drift test does not know about personas.

All metrics compare the champion's labels of the current month with its labels of the
reference window:

- unassigned rate (rows beyond every persona radius);
- mean and p95 distance of assigned rows to their persona centroid, and their ratios;
- persona mix shift: PSI of the persona shares (unassigned is a bin of its own) with a
  pseudo-count of 0.5 per bin so an empty bin never gives ``log(0)``, and a chi-square test
  of homogeneity on the counts;
- per-persona centroid shift: distance between the current and reference means of the
  persona's rows in reference standard deviations (per feature), with a chi-square p-value
  (the squared shift over ``1/n_cur + 1/n_ref`` is chi-square with one degree of freedom
  per feature when nothing moved), so a small persona's noisy mean is not called a shift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from persona.model import UNASSIGNED_ID, PersonaModel, Prediction

PSEUDO_COUNT = 0.5
MIN_PERSONA_ROWS = 10


def _distance_stats(pred: Prediction) -> tuple[float | None, float | None]:
    dist = pred.distance[pred.assigned]
    if len(dist) == 0:
        return None, None
    return float(dist.mean()), float(np.quantile(dist, 0.95))


def _ratio(cur: float | None, ref: float | None) -> float | None:
    if cur is None or ref is None or ref <= 0:
        return None
    return cur / ref


def _counts(pred: Prediction, bins: list[str]) -> np.ndarray:
    ids, counts = np.unique(pred.persona_id, return_counts=True)
    lookup = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    return np.array([lookup.get(b, 0) for b in bins], dtype=np.float64)


def persona_mix(cur: Prediction, ref: Prediction, model: PersonaModel) -> dict[str, Any]:
    """Persona shares of both sides, their PSI and a chi-square test of homogeneity.

    Args:
        cur: Labels of the current month.
        ref: Labels of the reference window.
        model: The model (gives the persona bins).

    Returns:
        ``{"bins", "current_shares", "reference_shares", "psi", "chi2", "chi2_pvalue"}``.
    """
    bins = [*model.persona_ids, UNASSIGNED_ID]
    c, r = _counts(cur, bins), _counts(ref, bins)
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


def centroid_shifts(
    current_x: np.ndarray,
    reference_x: np.ndarray,
    cur: Prediction,
    ref: Prediction,
    model: PersonaModel,
) -> dict[str, dict[str, Any]]:
    """Per persona: how far the current mean of its rows moved, in reference std units.

    Args:
        current_x: Current rows.
        reference_x: Reference rows.
        cur: Labels of the current rows.
        ref: Labels of the reference rows.
        model: The model.

    Returns:
        ``{persona_id: {"shift", "pvalue", "n_current", "n_reference"}}``; shift and p-value
        are None when either side has fewer than `MIN_PERSONA_ROWS` assigned rows.
    """
    out: dict[str, dict[str, Any]] = {}
    for index, pid in enumerate(model.persona_ids):
        c_rows = current_x[cur.assigned & (cur.nearest_index == index)]
        r_rows = reference_x[ref.assigned & (ref.nearest_index == index)]
        entry: dict[str, Any] = {
            "shift": None,
            "pvalue": None,
            "n_current": len(c_rows),
            "n_reference": len(r_rows),
        }
        if len(c_rows) >= MIN_PERSONA_ROWS and len(r_rows) >= MIN_PERSONA_ROWS:
            std = np.maximum(r_rows.std(axis=0, ddof=1), 1e-9)
            z = (c_rows.mean(axis=0) - r_rows.mean(axis=0)) / std
            shift_sq = float(np.sum(z * z))
            stat = shift_sq / (1.0 / len(c_rows) + 1.0 / len(r_rows))
            entry["shift"] = float(np.sqrt(shift_sq))
            entry["pvalue"] = float(stats.chi2.sf(stat, df=len(z)))
        out[pid] = entry
    return out


def persona_fit(
    current_x: np.ndarray,
    reference_x: np.ndarray,
    cur: Prediction,
    ref: Prediction,
    model: PersonaModel,
) -> dict[str, Any]:
    """Compute every persona-fit metric of the current month against the reference.

    Args:
        current_x: Current rows, shape (rows, features).
        reference_x: Reference rows.
        cur: The model's labels of the current rows.
        ref: The model's labels of the reference rows.
        model: The model that labelled both.

    Returns:
        A JSON-ready dict (see the module docstring for the meaning of each metric).
    """
    cur_mean, cur_p95 = _distance_stats(cur)
    ref_mean, ref_p95 = _distance_stats(ref)
    shifts = centroid_shifts(current_x, reference_x, cur, ref, model)
    measured = {k: v for k, v in shifts.items() if v["shift"] is not None}
    worst = max(measured, key=lambda k: measured[k]["shift"]) if measured else None
    return {
        "unassigned_rate": float(1.0 - cur.assigned.mean()) if len(cur) else None,
        "reference_unassigned_rate": float(1.0 - ref.assigned.mean()) if len(ref) else None,
        "mean_distance": cur_mean,
        "reference_mean_distance": ref_mean,
        "distance_ratio": _ratio(cur_mean, ref_mean),
        "p95_distance": cur_p95,
        "reference_p95_distance": ref_p95,
        "p95_distance_ratio": _ratio(cur_p95, ref_p95),
        "mix": persona_mix(cur, ref, model),
        "centroid_shift": shifts,
        "max_centroid_shift": measured[worst]["shift"] if worst else None,
        "max_centroid_shift_persona": worst,
        "max_centroid_shift_pvalue": measured[worst]["pvalue"] if worst else None,
    }
