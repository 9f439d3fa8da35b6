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
    expected = persona_fit(cur_x, ref_x, cur, ref, model)
    got = fit_from_stats(_side(cur_x, cur), _side(ref_x, ref), tuple(model.persona_ids))
    assert set(got) == set(expected)
    for key, value in expected.items():
        if key in ("mix", "centroid_shift"):
            continue
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert got[key] == value, key
    for key in ("psi", "chi2", "chi2_pvalue"):
        assert got["mix"][key] == pytest.approx(expected["mix"][key], rel=1e-12)
    assert got["mix"]["bins"] == expected["mix"]["bins"]
    assert got["mix"]["current_shares"] == pytest.approx(expected["mix"]["current_shares"])
    for pid, entry in expected["centroid_shift"].items():
        other = got["centroid_shift"][pid]
        assert (other["n_current"], other["n_reference"]) == (
            entry["n_current"],
            entry["n_reference"],
        )
        for key in ("shift", "pvalue"):
            if entry[key] is None:
                assert other[key] is None
            else:
                assert other[key] == pytest.approx(entry[key], rel=1e-9, abs=1e-300)
