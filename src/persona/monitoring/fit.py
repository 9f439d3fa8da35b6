"""Persona-fit measurements: what a marginal drift test on the mixture cannot see.

Every row of both sides goes to its nearest persona of the champion model; the current
month is then compared with the reference window persona by persona, so a change in the
persona mix is never mistaken for a persona that moved. Each comparison is a test with a
p-value and an effect size, collected in ``tests`` for the policy (which controls the
family-wise error rate over all of them with Holm):

- ``shift`` (per persona) and ``feature_shift`` (per persona x feature): Welch t-tests of
  the means; effect = mean difference in pooled std; the persona-level p-value combines
  the features (sum of squared normal scores, chi-square with 10 df).
- ``spread`` (per persona) and ``feature_spread``: Welch t-tests on the distances to the
  median (Brown-Forsythe); effect = ratio of mean distances, current / reference.
- ``far``: rows beyond the reference's extreme distance to the nearest persona, an exact
  beta-binomial test (a new segment shows here first); effect = excess rate.
- ``unassigned``: rows beyond the model's radii, a one-sided binomial test against the
  larger of the reference's rate and the share the radii leave out by construction
  (``1 - RADIUS_QUANTILE``); effect = excess rate over the reference's rate.
- ``gone`` (per persona): one-sided Fisher exact test that its share fell; effect = current
  share / reference share.

The persona mix (shares, PSI with a pseudo-count of 0.5 per bin, chi-square test of
homogeneity) is reported separately: a pure mix change is a ``watch``, not a retrain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from persona.model import UNASSIGNED_ID, PersonaModel, Prediction
from persona.monitoring import stats as st

PSEUDO_COUNT = 0.5
MIN_PERSONA_ROWS = 20


def _test(kind: str, persona: str | None, feature: str | None, effect: float, p: float) -> dict:
    """One entry of the ``tests`` list."""
    return {"kind": kind, "persona": persona, "feature": feature, "effect": effect, "pvalue": p}


def _distance_stats(pred: Prediction) -> tuple[float | None, float | None]:
    dist = pred.distance[pred.assigned]
    if len(dist) == 0:
        return None, None
    return float(dist.mean()), float(np.quantile(dist, 0.95))


def _ratio(cur: float | None, ref: float | None) -> float | None:
    if cur is None or ref is None or ref <= 0:
        return None
    return cur / ref


def _counts(labels: np.ndarray, bins: list[str]) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    lookup = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    return np.array([lookup.get(b, 0) for b in bins], dtype=np.float64)


def persona_mix(cur: Prediction, ref: Prediction, model: PersonaModel) -> dict[str, Any]:
    """Shares of the nearest persona on both sides, their PSI and a chi-square test.

    Args:
        cur: Labels of the current month.
        ref: Labels of the reference window.
        model: The model (gives the persona bins).

    Returns:
        ``{"bins", "current_shares", "reference_shares", "assigned_shares", "psi", "chi2",
        "chi2_pvalue"}``; assigned shares count unassigned rows as a bin of their own.
    """
    bins = list(model.persona_ids)
    c, r = _counts(cur.nearest_id, bins), _counts(ref.nearest_id, bins)
    cs = (c + PSEUDO_COUNT) / (c.sum() + PSEUDO_COUNT * len(bins))
    rs = (r + PSEUDO_COUNT) / (r.sum() + PSEUDO_COUNT * len(bins))
    psi = float(np.sum((cs - rs) * np.log(cs / rs)))
    used = (c + r) > 0
    chi2, pvalue = 0.0, 1.0
    if used.sum() >= 2 and c.sum() > 0 and r.sum() > 0:
        res = stats.chi2_contingency(np.vstack([c[used], r[used]]), correction=False)
        chi2, pvalue = float(res.statistic), float(res.pvalue)
    labelled = [*bins, UNASSIGNED_ID]
    assigned = _counts(cur.persona_id, labelled)
    return {
        "bins": bins,
        "current_shares": dict(zip(bins, (c / max(c.sum(), 1)).tolist(), strict=True)),
        "reference_shares": dict(zip(bins, (r / max(r.sum(), 1)).tolist(), strict=True)),
        "assigned_shares": dict(
            zip(labelled, (assigned / max(assigned.sum(), 1)).tolist(), strict=True)
        ),
        "psi": psi,
        "chi2": chi2,
        "chi2_pvalue": pvalue,
    }


def persona_tests(
    pid: str, c_rows: np.ndarray, r_rows: np.ndarray, features: tuple[str, ...]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Location and spread tests of one persona's current rows against its reference rows.

    Args:
        pid: Persona id.
        c_rows: Current rows nearest to the persona.
        r_rows: Reference rows nearest to it.
        features: Feature names.

    Returns:
        ``(summary, tests)``; no tests when either side has fewer than `MIN_PERSONA_ROWS`.
    """
    summary: dict[str, Any] = {
        "shift": None,
        "pvalue": None,
        "spread_ratio": None,
        "spread_pvalue": None,
        "n_current": len(c_rows),
        "n_reference": len(r_rows),
    }
    if len(c_rows) < MIN_PERSONA_ROWS or len(r_rows) < MIN_PERSONA_ROWS:
        return summary, []
    shift, shift_p = st.welch(c_rows, r_rows)
    size, size_p, tests = st.location_tests(pid, features, shift, shift_p)
    dev_c, dev_r = st.spread_deviations(c_rows), st.spread_deviations(r_rows)
    spread_p = st.pooled_t(dev_c, dev_r)
    spread_ratio = dev_c.mean(axis=0) / np.maximum(dev_r.mean(axis=0), 1e-12)
    rows_c, rows_r = st.row_spread(c_rows), st.row_spread(r_rows)
    (row_p,) = st.pooled_t(rows_c[:, None], rows_r[:, None])
    summary.update(
        shift=size,
        pvalue=size_p,
        spread_ratio=float(rows_c.mean() / max(rows_r.mean(), 1e-12)),
        spread_pvalue=float(row_p),
    )
    tests.append(_test("spread", pid, None, summary["spread_ratio"], summary["spread_pvalue"]))
    for j, name in enumerate(features):
        tests.append(_test("feature_spread", pid, name, float(spread_ratio[j]), float(spread_p[j])))
    return summary, tests


def gone_tests(mix: dict[str, Any], n_cur: int, n_ref: int) -> list[dict[str, Any]]:
    """One-sided Fisher exact test per persona that its share fell (from the mix shares)."""
    out = []
    for pid in mix["bins"]:
        if pid == UNASSIGNED_ID:
            continue
        c = round(mix["current_shares"][pid] * n_cur)
        r = round(mix["reference_shares"][pid] * n_ref)
        if r < MIN_PERSONA_ROWS or n_cur == 0:
            continue
        table = [[c, n_cur - c], [r, n_ref - r]]
        p = float(stats.fisher_exact(table, alternative="less").pvalue)
        ratio = (c / n_cur) / (r / n_ref)
        out.append(_test("gone", pid, None, ratio, p))
    return out


def persona_fit(
    current_x: np.ndarray,
    reference_x: np.ndarray,
    cur: Prediction,
    ref: Prediction,
    model: PersonaModel,
    far_tail: float = 0.002,
    unassigned_floor: float = 0.001,
) -> dict[str, Any]:
    """Compute every persona-fit measurement of the current month against the reference.

    Args:
        current_x: Current rows, shape (rows, features).
        reference_x: Reference rows.
        cur: The model's labels of the current rows.
        ref: The model's labels of the reference rows.
        model: The model that labelled both.
        far_tail: Reference share beyond the threshold of the ``far`` test.
        unassigned_floor: Smallest null rate of the ``unassigned`` test.

    Returns:
        A JSON-ready dict (see the module docstring); ``tests`` lists every test.
    """
    n_cur, n_ref = len(cur), len(ref)
    cur_mean, cur_p95 = _distance_stats(cur)
    ref_mean, ref_p95 = _distance_stats(ref)
    personas: dict[str, dict[str, Any]] = {}
    tests: list[dict[str, Any]] = []
    for index, pid in enumerate(model.persona_ids):
        c_rows = current_x[cur.nearest_index == index]
        r_rows = reference_x[ref.nearest_index == index]
        personas[pid], found = persona_tests(pid, c_rows, r_rows, tuple(model.feature_names))
        tests += found
    far = st.tail_excess_pvalue(cur.distance, ref.distance, far_tail) if n_cur else None
    if far is not None:
        tests.append(_test("far", None, None, far["excess"], far["pvalue"]))
    un_c, un_r = int(np.sum(~cur.assigned)), int(np.sum(~ref.assigned))
    rate = un_c / n_cur if n_cur else None
    ref_rate = un_r / n_ref if n_ref else None
    if rate is not None and ref_rate is not None:
        p = st.binomial_greater(un_c, n_cur, max(ref_rate, unassigned_floor))
        tests.append(_test("unassigned", None, None, rate - ref_rate, p))
    mix = persona_mix(cur, ref, model)
    tests += gone_tests(mix, n_cur, n_ref)
    measured = {k: v for k, v in personas.items() if v["shift"] is not None}
    worst = max(measured, key=lambda k: measured[k]["shift"]) if measured else None
    return {
        "unassigned_rate": rate,
        "reference_unassigned_rate": ref_rate,
        "far": far,
        "mean_distance": cur_mean,
        "reference_mean_distance": ref_mean,
        "distance_ratio": _ratio(cur_mean, ref_mean),
        "p95_distance": cur_p95,
        "reference_p95_distance": ref_p95,
        "p95_distance_ratio": _ratio(cur_p95, ref_p95),
        "mix": mix,
        "centroid_shift": personas,
        "max_centroid_shift": measured[worst]["shift"] if worst else None,
        "max_centroid_shift_persona": worst,
        "max_centroid_shift_pvalue": measured[worst]["pvalue"] if worst else None,
        "tests": tests,
    }
