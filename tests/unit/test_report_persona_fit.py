"""The check's Evidently report: verdict and persona fit inside it, no contradicting headline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, calibrate_radii, from_catalog
from persona.monitoring import check, decide
from persona.monitoring.evidently_fit import METRIC_TYPE
from persona.monitoring.report import build_snapshot, write_report
from persona.months import Month, Window
from persona.settings import Settings
from persona.synth import generate_month
from tests.conftest import CATALOG

FLOOR = 1.0 - 0.999  # 1 - RADIUS_QUANTILE (the default): the unassigned test's floor


def month_x(scenario: str, seed: int, month: str = "2025-02") -> np.ndarray:
    frame, _ = generate_month(load_catalog(CATALOG), month, 500, seed=seed, scenario=scenario)
    return frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return month_x("stable", 1, "2025-01")


@pytest.fixture(scope="module")
def model(reference: np.ndarray) -> PersonaModel:
    base = from_catalog(load_catalog(CATALOG))
    return from_catalog(load_catalog(CATALOG), calibrate_radii(base, reference, 0.999, 1.25))


def widget_texts(snapshot: object) -> list[str]:
    model = snapshot.to_snapshot_model()  # type: ignore[attr-defined]
    return [json.dumps(w.dict(), default=str) for w in model.widgets]


@pytest.mark.parametrize("scenario", ["stable", "spread"])
def test_report_leads_with_the_verdict_and_never_contradicts_it(
    scenario: str,
    reference: np.ndarray,
    model: PersonaModel,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    cfg = make_settings()
    result = check(
        month_x(scenario, 7), reference, model, cfg.policy, unassigned_floor=FLOOR, seed=3
    )
    decision = decide(result, cfg.policy)
    seen: list[object] = []
    path = write_report(
        result, decision, Month("2025-02"), Window.of(["2025-01"]), tmp_path / "r.html",
        rules=cfg.policy, on_snapshot=seen.append,
    )  # fmt: skip
    assert path is not None and len(seen) == 1
    page = path.read_text(encoding="utf-8")
    assert "Dataset Drift is" not in page  # Evidently's own verdict-like headline is gone
    assert f"Verdict: {decision.verdict}" in page
    for reason in decision.reasons:
        assert json.dumps(reason)[1:-1] in page
    texts = widget_texts(seen[0])
    assert f"Verdict: {decision.verdict}" in texts[0]  # the first thing on the page
    assert "Persona mix: reference vs current" in "".join(texts)
    assert "Centroid shift per persona" in "".join(texts)
    assert "one input of the verdict" in "".join(texts)
    assert "</title>" in page and decision.verdict in page.split("</title>")[0]


def test_persona_fit_values_are_evidently_metrics(
    reference: np.ndarray, model: PersonaModel, make_settings: Callable[..., Settings]
) -> None:
    cfg = make_settings()
    result = check(
        month_x("spread", 8), reference, model, cfg.policy, unassigned_floor=FLOOR, seed=3
    )
    decision = decide(result, cfg.policy)
    snapshot = build_snapshot(
        result, decision, Month("2025-03"), Window.of(["2025-01"]), None, {"model_version": "1"}
    )
    model_ = snapshot.to_snapshot_model()
    values = {}
    for metric in model_.metric_results.values():
        params = metric.metric_value_location.metric.params
        if params.get("type") == METRIC_TYPE:
            values.setdefault(params["key"], metric.value)
    fit = result.fit
    assert fit is not None
    assert values["unassigned_rate"] == pytest.approx(fit.unassigned_rate)
    assert values["mix_psi"] == pytest.approx(fit.mix.psi)
    assert values["drift_share"] == pytest.approx(result.drift.drift_share)  # type: ignore[union-attr]
    words = ["no_drift", "watch", "retrain", "insufficient_data"]
    assert {w: values[f"verdict_{w}"] for w in words} == {  # one bar per month, named
        w: float(w == decision.verdict) for w in words
    }
    assert model_.timestamp.isoformat().startswith("2025-03-01")
    assert model_.metadata["verdict"] == decision.verdict
    assert model_.metadata["model_version"] == "1"
    # the drift part is there too: per-feature ValueDrift metrics
    kinds = {
        m.metric_value_location.metric.params.get("type") for m in model_.metric_results.values()
    }
    assert "evidently:metric_v2:ValueDrift" in kinds


def test_no_report_without_a_drift_test(
    reference: np.ndarray,
    model: PersonaModel,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    cfg = make_settings()
    result = check(
        month_x("stable", 9)[:20], reference, model, cfg.policy, unassigned_floor=FLOOR, seed=3
    )
    decision = decide(result, cfg.policy)
    assert decision.verdict == "insufficient_data"
    assert (
        write_report(
            result, decision, Month("2025-04"), Window.of(["2025-01"]), tmp_path / "r.html"
        )
        is None
    )
