"""The promotion gates (`registry.gates.evaluate_gates`) on hand-built models, without MLflow."""

from __future__ import annotations

import numpy as np

from persona.model import PersonaModel
from persona.registry.gates import GATES as GATE_FUNCTIONS
from persona.registry.gates import GateInputs, evaluate_gates, measure, model_score
from persona.settings import GateSettings, TrainingSettings

CENTRES = np.array([[0.0] * 10, [30.0] * 10])
GATES = GateSettings()
TRAINING = TrainingSettings(random_seed=3)


def _model(ids: tuple[str, ...], centres: np.ndarray, radii: list[float]) -> PersonaModel:
    return PersonaModel(ids, tuple(i.title() for i in ids), centres, np.array(radii))


def _blobs(rows: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(0, 1.0, (rows, 10)), rng.normal(30, 1.0, (rows, 10))])


def test_the_same_model_passes_every_gate() -> None:
    champion = _model(("a", "b"), CENTRES, [8.0, 8.0])
    data = _blobs()
    result = evaluate_gates(GateInputs(champion, champion, data, data, False), GATES, TRAINING)
    assert result.passed and result.metric == "silhouette"
    assert result.label_stability == 1.0
    assert result.champion_score == result.challenger_score
    assert [c.name for c in result.checks] == ["metric", "label_stability", "absorbed"]
    assert not any(c.waived for c in result.checks)
    assert result.absorbed.rows == 0
    assert result.to_dict()["passed"] is True


def test_swapped_labels_fail_stability_unless_drift_demanded_it() -> None:
    champion = _model(("a", "b"), CENTRES, [8.0, 8.0])
    swapped = _model(("b", "a"), CENTRES, [8.0, 8.0])
    data = _blobs()
    refused = evaluate_gates(GateInputs(champion, swapped, data, data, False), GATES, TRAINING)
    assert not refused.passed and refused.label_stability == 0.0
    assert not refused.check("label_stability").passed
    waived = evaluate_gates(GateInputs(champion, swapped, data, data, True), GATES, TRAINING)
    assert waived.passed and waived.check("label_stability").waived
    assert "waived: drift demanded a change" in waived.check("label_stability").detail


def test_a_worse_partition_fails_the_metric_gate_within_its_tolerance() -> None:
    champion = _model(("a", "b"), CENTRES, [8.0, 8.0])
    halves = np.vstack([[-1.0] + [0.0] * 9, [1.0] + [0.0] * 9, [30.0] * 10])
    split = _model(("a", "c", "b"), halves, [8.0, 8.0, 8.0])  # one blob cut in two
    data = _blobs()
    worse = evaluate_gates(GateInputs(champion, split, data, data, False), GATES, TRAINING)
    assert worse.challenger_score < worse.champion_score
    assert not worse.check("metric").passed and not worse.passed
    drift = evaluate_gates(GateInputs(champion, split, data, data, True), GATES, TRAINING)
    assert drift.check("metric").waived  # another k on a drift: waived, reported
    lenient = GateSettings(gate_metric_tolerance=10.0)
    assert (
        evaluate_gates(GateInputs(champion, split, data, data, False), lenient, TRAINING)
        .check("metric")
        .passed
    )


def test_absorbed_rows_are_never_waived() -> None:
    champion = _model(("a", "b"), CENTRES, [5.0, 5.0])
    month = np.vstack([np.zeros((90, 10)), np.full((10, 10), 3.0)])  # 10 rows at 9.5
    wider = _model(("a", "b"), CENTRES, [12.0, 5.0])
    result = evaluate_gates(GateInputs(champion, wider, month, month, True, month), GATES, TRAINING)
    absorbed = result.check("absorbed")
    assert not absorbed.passed and not absorbed.waived and not result.passed
    assert result.absorbed.rows == 10 and result.absorbed.share == 0.1
    assert result.to_dict()["absorbed"] == {"rows": 10, "unassigned": 10, "month_rows": 100,
                                            "share": 0.1, "by_persona": {"a": 10}}  # fmt: skip
    assert list(result.to_dict()["checks"][2]) == ["name", "passed", "waived", "detail"]
    allowed = GateSettings(gate_max_absorbed_share=0.2)
    assert evaluate_gates(
        GateInputs(champion, wider, month, month, True, month), allowed, TRAINING
    ).passed


def test_unscorable_scores_are_written_as_none() -> None:
    one = _model(("a",), CENTRES[:1], [8.0])
    data = _blobs(20)
    assert np.isnan(model_score(one, data, "silhouette", 100, 0))
    result = evaluate_gates(GateInputs(one, one, data, data, False), GATES, TRAINING)
    assert result.check("metric").passed  # neither can be scored: not worse
    assert result.to_dict()["champion_score"] is None


def test_each_gate_is_a_function_of_the_measures() -> None:
    champion = _model(("a", "b"), CENTRES, [8.0, 8.0])
    swapped = _model(("b", "a"), CENTRES, [8.0, 8.0])
    data = _blobs()
    inputs = GateInputs(champion, swapped, data, data, False)
    ctx = measure(inputs, GATES, TRAINING)
    assert ctx.stability == 0.0 and ctx.absorbed.rows == 0
    result = evaluate_gates(inputs, GATES, TRAINING)
    assert tuple(gate(ctx) for gate in GATE_FUNCTIONS) == result.checks
    assert [gate.__name__ for gate in GATE_FUNCTIONS] == [
        "metric_gate",
        "stability_gate",
        "absorbed_gate",
    ]
