"""Monitoring: real Evidently drift on synthetic months, persona fit, the decision policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from persona.catalog import load_catalog
from persona.errors import MonitoringError
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, calibrate_radii, from_catalog
from persona.monitoring import check, decide
from persona.monitoring.drift import sample_rows
from persona.monitoring.fit import persona_fit
from persona.monitoring.report import report_name, write_report
from persona.months import Month, Window
from persona.settings import Settings
from persona.synth import generate_month

CATALOG = Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml"

FLOOR = 1.0 - 0.999  # 1 - RADIUS_QUANTILE (the default): the unassigned test's floor


def month_x(scenario: str, seed: int, n: int = 500, month: str = "2025-02") -> np.ndarray:
    frame, _ = generate_month(load_catalog(CATALOG), month, n, scenario, seed=seed)
    return frame[list(FEATURE_NAMES)].to_numpy()


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return month_x("stable", 1000, month="2025-01")


@pytest.fixture(scope="module")
def model(reference: np.ndarray) -> PersonaModel:
    base = from_catalog(load_catalog(CATALOG))
    return from_catalog(load_catalog(CATALOG), calibrate_radii(base, reference, 0.999, 1.25))


@pytest.fixture
def cfg(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def test_stable_month_is_not_retrain(reference, model, cfg) -> None:
    result = check(
        month_x("stable", 1), reference, model, cfg.policy, unassigned_floor=FLOOR, seed=1
    )
    decision = decide(result, cfg.policy)
    assert decision.verdict in ("no_drift", "watch")
    assert result.drift is not None and len(result.drift.features) == 10
    first = result.drift.features[0]
    assert (first.feature, first.test, first.threshold) == ("x1", "ks", 0.05)
    assert first.drifted == (first.score < 0.05)
    assert result.fit is not None and result.fit.unassigned_rate < 0.01
    assert 0.9 < result.fit.distance_ratio < 1.1
    assert decision.reasons


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("spread", "spread x"),
        ("shift", "moved"),
        ("new_segment", "unassigned rate"),
        ("vanish", "is gone"),
        ("rescale", "x3 of persona"),
        ("sign_flip", "x3 of persona"),
        ("zero_fill", "farther from every persona than the reference's"),
    ],
)
def test_drift_scenarios_trigger_retrain(reference, model, cfg, scenario, expected) -> None:
    result = check(
        month_x(scenario, 3), reference, model, cfg.policy, unassigned_floor=FLOOR, seed=3
    )
    decision = decide(result, cfg.policy)
    assert decision.verdict == "retrain"
    assert any(expected in reason for reason in decision.reasons), decision.reasons
    assert decision.fired and any("Holm over" in reason for reason in decision.reasons)


def test_pure_mix_change_is_watch_with_the_shares(reference, model, cfg) -> None:
    result = check(month_x("mix", 3), reference, model, cfg.policy, unassigned_floor=FLOOR, seed=3)
    decision = decide(result, cfg.policy)
    assert decision.verdict == "watch", decision.reasons
    assert decision.reasons[0].startswith("persona mix changed: sustainable-steve 5")
    assert "(was 3" in decision.reasons[0] and "budget-bob 10.0%" in decision.reasons[0]


def test_same_inputs_same_verdict_and_evidently_does_not_decide(reference, model, cfg) -> None:
    cur = month_x("new_segment", 6)
    first = decide(
        check(cur, reference, model, cfg.policy, unassigned_floor=FLOOR, seed=1), cfg.policy
    )
    again = decide(
        check(cur, reference, model, cfg.policy, unassigned_floor=FLOOR, seed=1), cfg.policy
    )
    quick = decide(
        check(cur, reference, model, cfg.policy, unassigned_floor=FLOOR, seed=1, evidently=False),
        cfg.policy,
    )
    assert first == again == quick


def test_shift_names_the_moved_persona(reference, model, cfg) -> None:
    result = check(
        month_x("shift", 5), reference, model, cfg.policy, unassigned_floor=FLOOR, seed=5
    )
    shifts = result.fit.centroid_shift
    assert result.fit.max_centroid_shift_persona == model.persona_ids[0]
    assert shifts[model.persona_ids[0]].shift > 2.0
    assert all(shifts[p].shift < 0.7 for p in model.persona_ids[1:])


@pytest.mark.parametrize("rows", [0, 10, 49])
def test_tiny_current_month_is_insufficient_data(reference, model, cfg, rows) -> None:
    result = check(
        month_x("spread", 2)[:rows], reference, model, cfg.policy, unassigned_floor=FLOOR, seed=0
    )
    decision = decide(result, cfg.policy)
    assert decision.verdict == "insufficient_data"
    assert result.drift is None
    assert f"has {rows} rows" in decision.reasons[0]


def test_empty_reference_is_an_error(model, cfg) -> None:
    with pytest.raises(MonitoringError, match="reference window has no rows"):
        check(
            month_x("stable", 1),
            np.empty((0, 10)),
            model,
            cfg.policy,
            unassigned_floor=FLOOR,
            seed=0,
        )


def test_mismatched_columns_are_an_error(reference, model, cfg) -> None:
    with pytest.raises(MonitoringError, match=r"current data has shape \(500, 9\)"):
        check(
            month_x("stable", 1)[:, :9],
            reference,
            model,
            cfg.policy,
            unassigned_floor=FLOOR,
            seed=0,
        )
    with pytest.raises(MonitoringError, match="reference data"):
        check(
            month_x("stable", 1),
            reference[:, :9],
            model,
            cfg.policy,
            unassigned_floor=FLOOR,
            seed=0,
        )


def test_large_sides_are_sampled_with_the_seed(model, make_settings) -> None:
    cfg = make_settings(drift_sample_rows=300)
    cur, ref = month_x("stable", 7, n=800), month_x("stable", 8, n=1200)
    first = check(cur, ref, model, cfg.policy, unassigned_floor=FLOOR, seed=11)
    again = check(cur, ref, model, cfg.policy, unassigned_floor=FLOOR, seed=11)
    assert first.drift is not None and again.drift is not None
    assert (first.drift.n_current_used, first.drift.n_reference_used) == (300, 300)
    assert (first.drift.n_current, first.drift.n_reference) == (800, 1200)
    assert first.drift.sampled
    assert [f.score for f in first.drift.features] == [f.score for f in again.drift.features]
    assert first.n_current == 800  # persona fit uses every row


def test_sample_rows_keeps_small_arrays() -> None:
    x = np.arange(20.0).reshape(10, 2)
    rng = np.random.default_rng(0)
    assert sample_rows(x, 10, rng) is x
    sampled = sample_rows(x, 4, rng)
    assert sampled.shape == (4, 2) and np.all(np.diff(sampled[:, 0]) > 0)


def test_psi_is_finite_with_an_empty_bin(reference, model) -> None:
    cur = model.predict(reference[:200])
    ref = model.predict(reference)
    mix = persona_fit(reference[:200], reference, cur, ref, model).mix
    assert mix.assigned_shares["unassigned"] == 0.0
    assert np.isfinite(mix.psi) and mix.psi < 0.05
    assert mix.chi2_pvalue > 0.05


def test_report_states_samples_and_verdict(reference, model, make_settings, tmp_path) -> None:
    cfg = make_settings(drift_sample_rows=400)
    result = check(
        month_x("spread", 4), reference, model, cfg.policy, unassigned_floor=FLOOR, seed=4
    )
    decision = decide(result, cfg.policy)
    name = report_name(Month("2025-02"), Window.of(["2025-01"]), "1", "abcdef0123456789")
    assert name == "drift_2025-02_ref-2025-01_v1_abcdef01.html"
    path = write_report(result, decision, Month("2025-02"), Window.of(["2025-01"]), tmp_path / name)
    assert path is not None
    page = path.read_text(encoding="utf-8")
    assert "current 400 of 500, reference 400 of 500 (seeded samples)" in page
    assert "Verdict: retrain" in page and "Dataset Drift is" not in page
    assert len(page) > 100_000  # the Evidently widgets are there


def test_store_record_run_is_idempotent(make_settings) -> None:
    from persona.months import Month, Window
    from persona.store import monitoring as runs_store
    from persona.store.engine import open_store

    engine = open_store(make_settings().database_url)
    check = runs_store.MonitoringCheck(
        survey_month=Month("2025-03"),
        reference_months=Window.of(["2025-02", "2025-01"]),
        model_name="m",
        model_version="1",
        data_hash="h" * 64,
        n_current=500,
        n_reference=1000,
        n_current_sampled=None,
        n_reference_sampled=None,
        drift_share=None,
        dataset_drift=None,
        decision="retrain",
        reasons=["r"],
        feature_results=[],
        persona_fit={},
        report_path=None,
        mlflow_run_id=None,
    )
    first = runs_store.record_run(engine, check)
    assert runs_store.record_run(engine, check) == first
    found = runs_store.find_run(engine, "2025-03", ["2025-01", "2025-02"], "m", "1", "h" * 64)
    assert found is not None and found.run_id == first
    assert found.reference_months == check.reference_months and found.reasons == ["r"]
    assert found.to_dict()["reference_months"] == "2025-01,2025-02"
    assert found.to_dict() == {**check.to_dict(), "run_id": first, "action_taken": None,
                               "created_at": found.created_at}  # fmt: skip
    runs_store.set_action(engine, first, "retrained")
    assert [r.action_taken for r in runs_store.list_runs(engine, month="2025-03")] == ["retrained"]
    assert runs_store.list_runs(engine, month="2025-04") == []
    engine.dispose()


def test_far_rows_test_is_exact_and_sees_a_segment() -> None:
    from persona.monitoring.stats import tail_excess_pvalue

    rng = np.random.default_rng(3)
    reference = rng.chisquare(10, 500)
    out = tail_excess_pvalue(rng.chisquare(10, 500), reference, 0.002)
    assert out.m == 1 and out.threshold == reference.max()
    assert out.pvalue > 0.01 and out.expected == pytest.approx(500 / 501)
    # under "same distribution", P(count >= x) = P(the x largest of the pooled 1000 values
    # are all current), about 2^-x: the p-value is exact, not an approximation
    pvalues = [
        tail_excess_pvalue(rng.chisquare(10, 500), rng.chisquare(10, 500), 0.002).pvalue
        for _ in range(400)
    ]
    assert 0.01 <= np.mean(np.array(pvalues) < 0.05) <= 0.09
    segment = np.concatenate([rng.chisquare(10, 485), np.full(15, 80.0)])
    far = tail_excess_pvalue(segment, reference, 0.002)
    assert far.count >= 15 and far.pvalue < 1e-4 and far.excess > 0.02


def test_reference_option_is_one_definition_parsed_to_a_window() -> None:
    import inspect

    from persona.cli import _common, flow, monitor, spark
    from persona.errors import PersonaError

    commands = (monitor.monitor, flow.run_month, flow.check, spark.monitor)
    for command in commands:
        assert inspect.signature(command).parameters["reference"].default is (
            _common.REFERENCE_OPTION
        ), command
    assert _common.reference_window(None) is None and _common.reference_window(" ") is None
    window = _common.reference_window("2025-02, 2025-01,2025-02")
    assert window == Window.of(["2025-01", "2025-02"]) and window.to_list() == [
        "2025-01",
        "2025-02",
    ]
    with pytest.raises(PersonaError, match="invalid month '2025-13'"):
        _common.reference_window("2025-01,2025-13")


def test_baseline_grows_with_the_months_the_champion_judged_stable() -> None:
    from persona.monitoring.baseline import grown_reference

    training = Window.of(["2024-01"])
    verdicts = {
        "2024-02": "no_drift",
        "2024-03": "watch",
        "2024-04": "no_drift",
        "2024-05": "retrain",
        "2024-06": "no_drift",
        "2024-07": "no_drift",
    }
    grown = grown_reference(training, verdicts, Month("2024-07"), 12)
    assert grown.to_list() == ["2024-01", "2024-02", "2024-04", "2024-06"]
    # The cap keeps the training months and the latest stable months.
    assert grown_reference(training, verdicts, Month("2024-08"), 3).to_list() == [
        "2024-01", "2024-06", "2024-07",
    ]  # fmt: skip
    assert grown_reference(training, verdicts, Month("2024-08"), 1) == training
    # Every stable month joins until the cap, then the latest ones stay.
    year = {f"2024-{m:02d}": "no_drift" for m in range(2, 13)}
    assert len(grown_reference(training, year, Month("2025-01"), 12)) == 12
    assert len(grown_reference(training, year, Month("2024-10"), 12)) == 9
    assert grown_reference(training, year, Month("2025-01"), 6).to_list() == [
        "2024-01", "2024-08", "2024-09", "2024-10", "2024-11", "2024-12",
    ]  # fmt: skip
    # Months before or within the training window never join it.
    assert grown_reference(Window.of(["2024-04"]), verdicts, Month("2024-05"), 12).to_list() == [
        "2024-04"
    ]


def test_the_row_cap_keeps_the_training_months_and_the_newest_stable_months() -> None:
    """`BASELINE_MAX_ROWS`: stable months join newest first while the rows fit, whole."""
    from persona.monitoring.baseline import grown_reference

    training = Window.of(["2024-01"])
    year = {f"2024-{m:02d}": "no_drift" for m in range(2, 13)}
    rows = {f"2024-{m:02d}": 500 for m in range(1, 13)}
    assert len(grown_reference(training, year, Month("2025-01"), 12, rows, 6_000)) == 12
    capped = grown_reference(training, year, Month("2025-01"), 12, rows, 2_000)
    assert capped.to_list() == ["2024-01", "2024-10", "2024-11", "2024-12"]
    # A big month stops the growth there: older months never jump over it.
    big = {**rows, "2024-11": 5_000}
    assert grown_reference(training, year, Month("2025-01"), 12, big, 2_000).to_list() == [
        "2024-01", "2024-12",
    ]  # fmt: skip
    # The training months stay whatever their rows; the cap binds what joins them.
    assert grown_reference(training, year, Month("2025-01"), 12, rows, 100) == training
    # No cap given: the month cap alone (the same answer as before the row cap).
    assert grown_reference(training, year, Month("2025-01"), 12) == grown_reference(
        training, year, Month("2025-01"), 12, rows, None
    )
    # Deterministic: the same verdicts and rows give the same window.
    again = grown_reference(training, dict(reversed(year.items())), Month("2025-01"), 12,
                            rows, 2_000)  # fmt: skip
    assert again == capped


def test_judged_months_keep_the_first_verdict_and_the_one_the_cycle_acted_on(
    make_settings: Callable[..., Settings],
) -> None:
    """Later checks of a month (another reference, a replay) never change its verdict."""
    from persona.store import monitoring as runs_store
    from persona.store.engine import open_store

    engine = open_store(make_settings().database_url)

    def record(month: str, refs: str, verdict: str, version: str = "1", data: str = "h") -> int:
        check = runs_store.MonitoringCheck(
            Month(month), Window.of(refs.split(",")), "m", version, data * 64, 500, 500,
            None, None, None, None, verdict, [], [], {}, None, None,
        )  # fmt: skip
        return runs_store.record_run(engine, check)

    record("2025-02", "2025-01", "no_drift")
    record("2025-02", "2025-01,2025-03", "watch")  # a later check, another reference
    first = record("2025-03", "2025-01", "watch")
    acted = record("2025-03", "2025-01,2025-02", "no_drift")
    runs_store.set_action(engine, acted, "labelled")
    record("2025-04", "2025-01", "no_drift", version="2")  # another model version
    record("2025-05", "2025-01", "no_drift")  # not before the month judged
    judged = runs_store.judged_months(engine, "m", "1", Month("2025-05"))
    assert judged == {"2025-02": "no_drift", "2025-03": "no_drift"} and first != acted
    # A --replace of a month marks its runs stale: they are no verdict, its new run is.
    for run_id, action in ((first, "stale:"), (acted, "stale:labelled")):
        runs_store.set_action(engine, run_id, action)
    record("2025-03", "2025-01,2025-02", "retrain", data="r")  # the replaced month's data
    gone = record("2025-04", "2025-01", "watch")
    runs_store.set_action(engine, gone, "stale:alerted")
    judged = runs_store.judged_months(engine, "m", "1", Month("2025-05"))
    assert judged == {"2025-02": "no_drift", "2025-03": "retrain"}
    engine.dispose()


def test_rows_of_a_new_segment_go_to_far_and_the_reason_names_it(reference, model, cfg) -> None:
    """A 15 % segment: named first with its size and nearest persona; no persona blamed."""
    from persona.monitoring.sequences import names_nearest_change

    for seed in range(3):
        frame, _ = generate_month(
            load_catalog(CATALOG), "2025-02", 500, "new_segment", seed=seed, new_share=0.15
        )
        cur = frame[list(FEATURE_NAMES)].to_numpy()
        result = check(cur, reference, model, cfg.policy, seed=42, unassigned_floor=FLOOR,
                       evidently=False)  # fmt: skip
        decision = decide(result, cfg.policy)
        segment = result.fit.segment
        assert decision.verdict == "retrain" and segment is not None
        assert 50 <= segment.rows <= 110 and segment.nearest_persona in model.persona_ids
        first = decision.reasons[0]
        assert first.startswith(f"new segment? {segment.rows} rows"), first
        assert f"nearest persona {segment.nearest_persona} (" in first
        assert not any(names_nearest_change(r, segment.nearest_persona) for r in decision.reasons)
        assert result.to_dict()["persona_fit"]["segment"]["rows"] == segment.rows
