"""spark.stats: the persona fit from per-persona aggregates equals `fit.persona_fit`.

`_side` and `_far` compute with numpy exactly what the Spark passes of `spark.monitor`
aggregate (group by nearest persona, deviations from each group's mean scaled by
sqrt(n / (n - 1)); the m-th largest reference distance is `fit.core_threshold`), so every
test of the row path is checked against its from-moments / from-counts form.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, Prediction, calibrate_radii, from_catalog
from persona.monitoring.fit import SpreadMoments, core_threshold, persona_fit
from persona.monitoring.stats import (
    TailExcess,
    pooled_t,
    pooled_t_moments,
    tail_excess_from_counts,
    tail_excess_pvalue,
    tail_rows,
)
from persona.spark.stats import SideStats, comparable_personas, fit_from_stats
from persona.synth import generate_month

CATALOG = Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml"
TAIL = 0.002


def _x(month: str, scenario: str, n: int, seed: int) -> np.ndarray:
    frame, _ = generate_month(load_catalog(CATALOG), month, n, scenario, seed=seed)
    return frame[list(FEATURE_NAMES)].to_numpy()


def _side(x: np.ndarray, pred: Prediction, threshold: float) -> SideStats:
    """What the Spark rollup (pass 2) computes, here with numpy: groups by nearest persona."""
    core = pred.distance <= threshold
    means, stds, assigned, counts, beyond = {}, {}, {}, {}, {}
    for pid in np.unique(pred.nearest_id).tolist():
        nearest = pred.nearest_id == pid
        rows = x[nearest & core]
        counts[pid] = len(rows)
        means[pid] = rows.mean(axis=0) if len(rows) else np.full(x.shape[1], np.nan)
        stds[pid] = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.full(x.shape[1], np.nan)
        assigned[pid] = int(np.sum(pred.assigned & nearest))
        far = x[nearest & ~core]
        beyond[pid] = (len(far), far.sum(axis=0))
    dist = pred.distance[pred.assigned]
    return SideStats(
        rows=len(x),
        assigned=int(pred.assigned.sum()),
        distance_sum=float(dist.sum()),
        p95_distance=float(np.quantile(dist, 0.95)) if len(dist) else None,
        counts=counts,
        assigned_counts=assigned,
        means=means,
        stds=stds,
        beyond=beyond,
    )


def _spreads(
    x: np.ndarray, pred: Prediction, side: SideStats, pids: list[str], threshold: float
) -> SideStats:
    """Pass 3: deviations of the rows within the threshold from the pass-2 means."""
    spreads = {}
    for pid in pids:
        rows = x[(pred.nearest_id == pid) & (pred.distance <= threshold)]
        n = float(side.counts[pid])
        diff = rows - side.means[pid]
        dev = np.abs(diff) * np.sqrt(n / (n - 1.0))
        row = np.sqrt(np.sum(diff * diff, axis=1) * n / (n - 1.0))
        spreads[pid] = SpreadMoments(
            len(rows), dev.mean(axis=0), dev.var(axis=0, ddof=1), row.mean(), row.var(ddof=1)
        )
    return dataclasses.replace(side, spreads=spreads)


def _far(cur: SideStats, ref: Prediction, threshold: float, m: int) -> TailExcess:
    """The ``far`` test from pass 2's counts of rows beyond the threshold."""
    count = sum(n for n, _ in cur.beyond.values())
    return tail_excess_from_counts(threshold, m, count, cur.rows, len(ref))


@pytest.mark.parametrize("scenario", ["stable", "shift", "new_segment", "mix", "spread", "vanish"])
def test_fit_from_stats_equals_persona_fit(scenario: str) -> None:
    ref_x = _x("2025-01", "stable", 800, 4)
    cur_x = _x("2025-02", scenario, 600, 4)
    base = from_catalog(load_catalog(CATALOG))
    model: PersonaModel = from_catalog(
        load_catalog(CATALOG), calibrate_radii(base, ref_x, 0.999, 1.25)
    )
    cur, ref = model.predict(cur_x), model.predict(ref_x)
    expected = persona_fit(cur_x, ref_x, cur, ref, model, far_tail=TAIL).to_dict()
    ids = tuple(model.persona_ids)
    threshold, m = core_threshold(ref.distance, TAIL)  # pass 1: the m-th largest distance
    c, r = _side(cur_x, cur, threshold), _side(ref_x, ref, threshold)
    pids = comparable_personas(c, r, ids)
    c = _spreads(cur_x, cur, c, pids, threshold)
    r = _spreads(ref_x, ref, r, pids, threshold)
    got = fit_from_stats(c, r, ids, _far(c, ref, threshold, m)).to_dict()
    assert list(got) == list(expected) and list(got["mix"]) == list(expected["mix"])
    for key in ("unassigned_rate", "reference_unassigned_rate", "mean_distance",
                "reference_mean_distance", "distance_ratio", "p95_distance_ratio"):  # fmt: skip
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key
    assert got["far"] == expected["far"]
    assert got["mix"] == expected["mix"]
    segment, want = got["segment"], expected["segment"]
    assert {k: v for k, v in segment.items() if k != "differences"} == {
        k: v for k, v in want.items() if k != "differences"
    }
    assert list(segment["differences"]) == list(want["differences"])
    for feature, value in want["differences"].items():
        assert segment["differences"][feature] == pytest.approx(value, rel=1e-9)
    assert got["mix"]["assigned_shares"] == expected["mix"]["assigned_shares"]
    assert got["mix"]["psi"] == pytest.approx(expected["mix"]["psi"], rel=1e-12)
    assert got["centroid_shift"].keys() == expected["centroid_shift"].keys()
    for pid, entry in expected["centroid_shift"].items():
        for key, value in entry.items():
            want = value if value is None else pytest.approx(value, rel=1e-9)
            assert got["centroid_shift"][pid][key] == want, (pid, key)
    # The same tests in the same order, so Holm and the policy see identical inputs.
    keys = [(t["kind"], t["persona"], t["feature"]) for t in got["tests"]]
    assert keys == [(t["kind"], t["persona"], t["feature"]) for t in expected["tests"]]
    assert {"spread", "feature_spread", "far", "unassigned"} <= {k for k, _, _ in keys}
    for t, other in zip(got["tests"], expected["tests"], strict=True):
        assert t["effect"] == pytest.approx(other["effect"], rel=1e-9, abs=1e-12)
        assert t["pvalue"] == pytest.approx(other["pvalue"], rel=1e-9, abs=1e-300)
    if scenario == "new_segment":  # the segment's rows fit no persona: described as `far`
        assert segment["rows"] > 50 and segment["nearest_persona"] in ids
    if scenario == "vanish":  # a persona with no current rows: no tests, still in the summary
        assert len(pids) == len(ids) - 1


def test_pooled_t_moments_is_pooled_t_on_rows() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.gamma(2.0, 1.5, (40, 3)), rng.gamma(2.0, 1.8, (700, 3))
    moments = (len(a), a.mean(axis=0), a.var(axis=0, ddof=1),
               len(b), b.mean(axis=0), b.var(axis=0, ddof=1))  # fmt: skip
    np.testing.assert_array_equal(pooled_t_moments(*moments), pooled_t(a, b))
    scipy_p = [stats.ttest_ind(a[:, j], b[:, j], equal_var=True).pvalue for j in range(3)]
    np.testing.assert_allclose(pooled_t(a, b), scipy_p, rtol=1e-10)


@pytest.mark.parametrize(("tail", "n_ref"), [(0.002, 500), (0.01, 1000), (0.5, 7)])
def test_tail_excess_from_counts_is_the_row_test(tail: float, n_ref: int) -> None:
    rng = np.random.default_rng(11)
    reference = np.round(rng.chisquare(10, n_ref), 1)  # rounded: ties at the threshold
    current = np.concatenate([np.round(rng.chisquare(10, 300), 1), np.full(9, 60.0)])
    rows = tail_excess_pvalue(current, reference, tail)
    m = tail_rows(tail, n_ref)
    assert m == rows.m == min(max(1, round(tail * n_ref)), n_ref)
    threshold = float(np.sort(reference)[::-1][m - 1])  # the m-th largest, as Spark finds it
    count = int(np.sum(current > threshold))
    assert tail_excess_from_counts(threshold, m, count, len(current), n_ref) == rows
    assert rows.count >= 9
    if tail < 0.1:  # nine rows far beyond a reference tail of a few values
        assert rows.pvalue < 0.05
    nothing = tail_excess_from_counts(threshold, m, 0, len(current), n_ref)
    assert nothing.pvalue == 1.0 and nothing.excess < 0
