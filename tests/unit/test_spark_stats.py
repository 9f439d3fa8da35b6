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
from persona.monitoring.fit import SpreadMoments, core_threshold, persona_fit, segment_centre
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


def _centre(
    x: np.ndarray, pred: Prediction, threshold: float, model: PersonaModel
) -> tuple[str, np.ndarray] | None:
    """Pass 2a: the current rows beyond the threshold per persona, then their centre."""
    beyond, squares = {}, {}
    for pid in model.persona_ids:
        far = x[(pred.nearest_id == pid) & (pred.distance > threshold)]
        if len(far):
            beyond[pid], squares[pid] = (len(far), far.sum(axis=0)), float(np.sum(far * far))
    return segment_centre(
        beyond, squares, dict(zip(model.persona_ids, model.centroids, strict=True))
    )


def _near(
    x: np.ndarray, pred: Prediction, threshold: float, centre: np.ndarray | None
) -> np.ndarray:
    """Rows within the threshold nearer the segment's centre than to their persona."""
    within = pred.distance <= threshold
    if centre is None:
        return np.zeros(len(x), dtype=bool)
    return within & (np.sum((x - centre) ** 2, axis=1) < pred.distance**2)


def _side(
    x: np.ndarray, pred: Prediction, threshold: float, centre: np.ndarray | None = None
) -> SideStats:
    """What the Spark rollup (pass 2b) computes, here with numpy: groups by nearest persona."""
    near = _near(x, pred, threshold, centre)
    core = (pred.distance <= threshold) & ~near
    means, stds, assigned, counts, beyond = {}, {}, {}, {}, {}
    for pid in np.unique(pred.nearest_id).tolist():
        nearest = pred.nearest_id == pid
        rows = x[nearest & core]
        counts[pid] = len(rows)
        means[pid] = rows.mean(axis=0) if len(rows) else np.full(x.shape[1], np.nan)
        stds[pid] = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.full(x.shape[1], np.nan)
        assigned[pid] = int(np.sum(pred.assigned & nearest))
        far = x[nearest & (pred.distance > threshold)]
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
        near=int(near.sum()),
    )


def _spreads(
    x: np.ndarray,
    pred: Prediction,
    side: SideStats,
    pids: list[str],
    threshold: float,
    centre: np.ndarray | None = None,
) -> SideStats:
    """Pass 3: deviations of the rows that fit each persona from the pass-2 means."""
    spreads = {}
    core = (pred.distance <= threshold) & ~_near(x, pred, threshold, centre)
    for pid in pids:
        rows = x[(pred.nearest_id == pid) & core]
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


@pytest.mark.parametrize(
    "scenario", ["stable", "shift", "new_segment", "close_segment", "mix", "spread", "vanish"]
)
def test_fit_from_stats_equals_persona_fit(scenario: str) -> None:
    ref_x = _x("2025-01", "stable", 800, 4)
    if scenario == "close_segment":  # 8 from its persona: partly within the threshold
        frame, _ = generate_month(
            load_catalog(CATALOG), "2025-02", 600, "new_segment", seed=4, new_share=0.15,
            new_distance=8.0,
        )  # fmt: skip
        cur_x = frame[list(FEATURE_NAMES)].to_numpy()
    else:
        cur_x = _x("2025-02", scenario, 600, 4)
    base = from_catalog(load_catalog(CATALOG))
    model: PersonaModel = from_catalog(
        load_catalog(CATALOG), calibrate_radii(base, ref_x, 0.999, 1.25)
    )
    cur, ref = model.predict(cur_x), model.predict(ref_x)
    expected = persona_fit(cur_x, ref_x, cur, ref, model, far_tail=TAIL).to_dict()
    ids = tuple(model.persona_ids)
    threshold, m = core_threshold(ref.distance, TAIL)  # pass 1: the m-th largest distance
    found = _centre(cur_x, cur, threshold, model)
    centre, beside = (None, None) if found is None else (found[1], found[0])
    c, r = _side(cur_x, cur, threshold, centre), _side(ref_x, ref, threshold, centre)
    pids = comparable_personas(c, r, ids)
    c = _spreads(cur_x, cur, c, pids, threshold, centre)
    r = _spreads(ref_x, ref, r, pids, threshold, centre)
    got = fit_from_stats(c, r, ids, _far(c, ref, threshold, m), beside=beside).to_dict()
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
    if scenario == "close_segment":  # the rows inside the threshold are found too: `near`
        near = [t for t in got["tests"] if t["kind"] == "near"]
        assert len(near) == 1 and near[0]["persona"] == segment["nearest_persona"]
        assert near[0]["effect"] > 0.03 and near[0]["pvalue"] < 1e-6
    if scenario in ("stable", "spread", "mix"):  # no cluster off a persona: no `near` test
        assert "near" not in {k for k, _, _ in keys}
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


def test_the_mix_overdispersion_from_counts_per_reference_month_equals_the_row_path() -> None:
    """Four reference months whose shares wander: Spark's per-month counts, same mix test."""
    shares = ([0.40, 0.33, 0.27], [0.28, 0.36, 0.36], [0.36, 0.26, 0.38], [0.31, 0.38, 0.31])
    frames = [
        generate_month(load_catalog(CATALOG), f"2025-0{i + 1}", 500, "mix", seed=6, shares=s)[0]
        for i, s in enumerate(shares)
    ]
    ref_x = np.vstack([f[list(FEATURE_NAMES)].to_numpy() for f in frames])
    labels = np.concatenate([f["survey_month"].to_numpy() for f in frames])
    cur_x = _x("2025-06", "stable", 600, 6)
    base = from_catalog(load_catalog(CATALOG))
    model = from_catalog(load_catalog(CATALOG), calibrate_radii(base, ref_x, 0.999, 1.25))
    cur, ref = model.predict(cur_x), model.predict(ref_x)
    expected = persona_fit(cur_x, ref_x, cur, ref, model, far_tail=TAIL, reference_months=labels)
    ids = tuple(model.persona_ids)
    threshold, m = core_threshold(ref.distance, TAIL)
    c, r = _side(cur_x, cur, threshold), _side(ref_x, ref, threshold)
    core = ref.distance <= threshold
    months = {  # Spark: group the reference's rows within the threshold by month and persona
        month: {pid: int(np.sum(core & (labels == month) & (ref.nearest_id == pid))) for pid in ids}
        for month in np.unique(labels).tolist()
    }
    r = dataclasses.replace(r, month_counts=months)
    pids = comparable_personas(c, r, ids)
    c, r = _spreads(cur_x, cur, c, pids, threshold), _spreads(ref_x, ref, r, pids, threshold)
    got = fit_from_stats(c, r, ids, _far(c, ref, threshold, m))
    assert got.mix == expected.mix
    assert expected.mix.dispersion > 1.2 and expected.mix.overdispersion > 0
    # The same rows as one month: the prior alone, a smaller factor, a smaller p-value.
    flat = persona_fit(cur_x, ref_x, cur, ref, model, far_tail=TAIL)
    assert flat.mix.chi2 == expected.mix.chi2
    assert flat.mix.dispersion < expected.mix.dispersion
    assert flat.mix.chi2_pvalue < expected.mix.chi2_pvalue
