"""spark.stats: the persona-fit dict from per-persona aggregates equals `fit.persona_fit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, Prediction, calibrate_radii, from_catalog
from persona.monitoring.fit import persona_fit
from persona.spark.stats import SideStats, fit_from_stats
from persona.synth import generate_month

CATALOG = Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml"


def _x(month: str, scenario: str, n: int, seed: int) -> np.ndarray:
    frame, _ = generate_month(load_catalog(CATALOG), month, n, scenario, seed=seed)
    return frame[list(FEATURE_NAMES)].to_numpy()


def _side(x: np.ndarray, pred: Prediction) -> SideStats:
    """What the Spark rollup computes, here with numpy."""
    ids, counts = np.unique(pred.persona_id, return_counts=True)
    means, stds = {}, {}
    for pid in ids.tolist():
        rows = x[pred.persona_id == pid]
        means[pid] = rows.mean(axis=0)
        stds[pid] = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.full(x.shape[1], np.nan)
    dist = pred.distance[pred.assigned]
    return SideStats(
        rows=len(x),
        assigned=int(pred.assigned.sum()),
        distance_sum=float(dist.sum()),
        p95_distance=float(np.quantile(dist, 0.95)) if len(dist) else None,
        counts=dict(zip(ids.tolist(), counts.tolist(), strict=True)),
        means=means,
        stds=stds,
    )


@pytest.mark.parametrize("scenario", ["stable", "shift", "new_segment", "mix", "spread"])
def test_fit_from_stats_equals_persona_fit(scenario: str) -> None:
    ref_x = _x("2025-01", "stable", 800, 4)
    cur_x = _x("2025-02", scenario, 600, 4)
    base = from_catalog(load_catalog(CATALOG))
    model: PersonaModel = from_catalog(
        load_catalog(CATALOG), calibrate_radii(base, ref_x, 0.999, 1.25)
    )
    cur, ref = model.predict(cur_x), model.predict(ref_x)
    expected = persona_fit(cur_x, ref_x, cur, ref, model).to_dict()
    got = fit_from_stats(_side(cur_x, cur), _side(ref_x, ref), tuple(model.persona_ids)).to_dict()
    assert list(got) == list(expected) and list(got["mix"]) == list(expected["mix"])
    for key in ("unassigned_rate", "reference_unassigned_rate", "mean_distance",
                "reference_mean_distance", "distance_ratio", "p95_distance_ratio"):  # fmt: skip
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key
    assert got["far"] is None  # needs a second pass over the rows: not on Spark yet
    by_key = {(t["kind"], t["persona"], t["feature"]): t for t in expected["tests"]}
    kinds = {t["kind"] for t in got["tests"]}
    assert kinds <= {"shift", "feature_shift", "unassigned", "gone"}
    assert "unassigned" in kinds
    if np.all(cur.assigned) and np.all(ref.assigned):
        # groups by assigned persona = groups by nearest persona: the same tests exactly
        assert {"shift", "feature_shift"} <= kinds
        for t in got["tests"]:
            other = by_key[(t["kind"], t["persona"], t["feature"])]
            assert t["effect"] == pytest.approx(other["effect"], rel=1e-9)
            assert t["pvalue"] == pytest.approx(other["pvalue"], rel=1e-6, abs=1e-300)
