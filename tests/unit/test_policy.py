"""The monitoring decision (`monitoring.policy.decide`) on hand-built check results.

Pure: no MLflow, no store, no Evidently run. Every verdict is reached from inputs written
out here, and the idempotence key of a stored verdict follows every policy setting.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from persona.monitoring import CheckResult, decide
from persona.monitoring.drift import DriftResult, FeatureDrift
from persona.monitoring.policy import VERDICTS
from persona.monitoring.results import FitTest, PersonaFit, PersonaMix, PersonaShift, Segment
from persona.monitoring.run import verdict_key
from persona.monitoring.stats import TailExcess
from persona.settings import PolicySettings

POLICY = PolicySettings()


def _mix(psi: float = 0.0, chi2_pvalue: float = 1.0) -> PersonaMix:
    return PersonaMix(
        bins=("a", "b"),
        current_shares={"a": 0.7, "b": 0.3},
        reference_shares={"a": 0.5, "b": 0.5},
        assigned_shares={"a": 0.7, "b": 0.3, "unassigned": 0.0},
        psi=psi,
        chi2=0.0,
        chi2_pvalue=chi2_pvalue,
    )


def _result(
    drift_share: float = 0.0,
    n_current: int = 500,
    tests: list[FitTest] | None = None,
    **fit: Any,
) -> CheckResult:
    drifted = round(drift_share * 10)
    features = [FeatureDrift(f"x{i + 1}", "ks", 0.5, 0.05, i < drifted) for i in range(10)]
    drift = DriftResult(features, drift_share, False, n_current, 500, n_current, 500)
    values: dict[str, Any] = {
        "unassigned_rate": 0.0,
        "reference_unassigned_rate": 0.0,
        "far": None,
        "mean_distance": 6.0,
        "reference_mean_distance": 6.0,
        "distance_ratio": 1.0,
        "p95_distance": 9.0,
        "reference_p95_distance": 9.0,
        "p95_distance_ratio": 1.0,
        "mix": _mix(),
        "tests": tuple(tests or ()),
        **fit,
    }
    return CheckResult(n_current, 500, drift, PersonaFit(**values), 0)


def _t(kind: str, effect: float, pvalue: float, persona: str | None = "a") -> FitTest:
    feature = "x1" if kind.startswith("feature_") else None
    return FitTest(kind, persona, feature, effect, pvalue)


def test_insufficient_data_below_min_month_rows() -> None:
    loud = [_t("shift", 5.0, 1e-12)]
    decision = decide(_result(n_current=49, tests=loud), POLICY)
    assert decision.verdict == "insufficient_data" and decision.fired == ()
    assert decision.reasons == [
        "current month has 49 rows, fewer than the minimum 50 (MIN_MONTH_ROWS); no drift verdict"
    ]
    assert decide(_result(n_current=50, tests=loud), POLICY).verdict == "retrain"
    empty = CheckResult(0, 500, None, None, 0)
    assert decide(empty, POLICY).verdict == "insufficient_data"


def test_no_drift_says_what_was_measured() -> None:
    decision = decide(_result(0.9), POLICY)  # the marginal K-S share informs, never decides
    assert decision.verdict == "no_drift" and decision.fired == ()
    (reason,) = decision.reasons
    assert reason.startswith("no persona moved, spread or vanished")
    assert "unassigned 0.0%" in reason and "mix PSI 0.000 (p=1)" in reason
    assert "marginal K-S drifted share 0.90 (information)" in reason


def test_watch_on_a_significant_and_large_mix_change() -> None:
    mix = _mix(0.15, 0.001)
    watch = decide(_result(mix=mix), POLICY)
    assert watch.verdict == "watch" and watch.fired == ()
    assert watch.reasons == [
        "persona mix changed: a 70.0% (was 50.0%), b 30.0% (was 50.0%); "
        "chi-square p=0.001, PSI 0.150"
    ]
    # large but not significant (tiny persona counts), or significant but small: no alarm
    assert decide(_result(mix=_mix(0.3, 0.2)), POLICY).verdict == ("no_drift")
    assert decide(_result(mix=_mix(0.01, 1e-6)), POLICY).verdict == ("no_drift")
    both = decide(_result(mix=mix, tests=[_t("shift", 1.5, 1e-9)]), POLICY)
    assert both.verdict == "retrain" and "persona mix changed" in both.reasons[-1]


@pytest.mark.parametrize(
    ("test", "verdict"),
    [
        (_t("shift", 1.5, 1e-9), "retrain"),
        (_t("shift", 0.1, 1e-9), "no_drift"),  # significant, too small an effect
        (_t("feature_shift", -0.5, 1e-9), "retrain"),
        (_t("spread", 1.3, 1e-9), "retrain"),
        (_t("spread", 0.8, 1e-9), "no_drift"),  # tighter is still a fit
        (_t("spread", 1.05, 1e-9), "no_drift"),
        (_t("feature_spread", 1.2, 1e-9), "retrain"),
        (_t("gone", 0.1, 1e-9), "retrain"),
        (_t("gone", 0.5, 1e-9), "no_drift"),
        (_t("unassigned", 0.05, 1e-9, None), "retrain"),
        (_t("unassigned", 0.005, 1e-9, None), "no_drift"),
        (_t("shift", float("nan"), 1e-9), "no_drift"),
        (_t("shift", 1.5, 0.01), "no_drift"),  # not rejected at alpha 0.001
    ],
)
def test_each_kind_of_test_fires_on_a_big_enough_effect(test: FitTest, verdict: str) -> None:
    unassigned = {"unassigned_rate": 0.06, "reference_unassigned_rate": 0.01}
    decision = decide(_result(tests=[test], **unassigned), POLICY)
    assert decision.verdict == verdict
    assert decision.fired == ((test,) if verdict == "retrain" else ())


def test_retrain_reasons_name_every_fired_test() -> None:
    far = TailExcess(21.04, 1, 15, 1.0, 0.03, 0.028, 4e-9)
    tests = [
        _t("shift", 1.5, 1e-9),
        _t("spread", 1.3, 2e-9, "b"),
        _t("gone", 0.1, 3e-9, "c"),
        _t("far", 0.03, 4e-9, None),
        _t("unassigned", 0.05, 5e-9, None),
        *[_t("feature_shift", 0.5, 1e-8 * (i + 1)) for i in range(5)],
    ]
    fit = {"tests": tests, "far": far, "unassigned_rate": 0.06, "reference_unassigned_rate": 0.01}
    decision = decide(_result(**fit), POLICY)
    assert decision.verdict == "retrain" and decision.fired == tuple(tests)
    assert decision.reasons == [
        "new segment? 15 rows (3.0%) lie farther from every persona than the reference's"
        " farthest row (distance 21.0; 1.0 expected, p=4e-09)",
        "unassigned rate 6.0% vs reference 1.0% (binomial p=5e-09)",
        "persona c is gone: share x0.10 of the reference (p=3e-09)",
        "persona a moved 1.50 std (p=1e-09)",
        "persona b spread x1.30 (p=2e-09)",
        "x1 of persona a shifted +0.50 std (p=1e-08)",
        "x1 of persona a shifted +0.50 std (p=2e-08)",
        "x1 of persona a shifted +0.50 std (p=3e-08)",
        "2 more feature-level changes",
        "Holm over 10 persona-fit tests at alpha 0.001",
    ]


_SEGMENT = Segment(15, 0.03, "d", 14, (("x3", 2.13), ("x7", -1.46), ("x1", 0.9), ("x2", 0.1)))


def test_a_new_segment_is_named_first_with_its_size_persona_and_answers() -> None:
    far = TailExcess(21.04, 1, 15, 1.0, 0.03, 0.028, 4e-9)
    tests = [_t("spread", 1.3, 2e-9, "b"), _t("far", 0.03, 4e-9, None)]
    decision = decide(_result(tests=tests, far=far, segment=_SEGMENT), POLICY)
    assert decision.reasons[:2] == [
        "new segment? 15 rows (3.0%) lie farther from every persona than the reference's"
        " farthest row (distance 21.0; 1.0 expected, p=4e-09), nearest persona d (x3 +2.1,"
        " x7 -1.5, x1 +0.9 std from it)",
        "persona b spread x1.30 (p=2e-09)",
    ]


def test_far_rows_of_a_persona_that_spread_come_after_that_persona() -> None:
    """Rows beyond every persona, nearest to a persona that spread: the spread explains them."""
    far = TailExcess(21.04, 1, 15, 1.0, 0.03, 0.028, 4e-9)
    tests = [_t("far", 0.03, 4e-9, None), _t("spread", 1.3, 2e-9, "d")]
    decision = decide(_result(tests=tests, far=far, segment=_SEGMENT), POLICY)
    assert decision.reasons[0] == "persona d spread x1.30 (p=2e-09)"
    assert decision.reasons[1].startswith("new segment? 15 rows")


def test_holm_controls_the_family() -> None:
    fill = [_t("feature_shift", 0.0, 0.9)] * 98
    assert decide(_result(tests=[_t("shift", 1.5, 1e-6), *fill]), POLICY).verdict == "retrain"
    # significant alone, but not after Holm over 100 tests (2e-5 * 100 > alpha)
    many = [_t("shift", 1.5, 2e-5), *fill, fill[0]]
    assert decide(_result(tests=many), POLICY).verdict == "no_drift"
    assert decide(_result(tests=many), PolicySettings(persona_fit_alpha=0.01)).verdict == (
        "retrain"
    )


def test_every_threshold_is_a_setting() -> None:
    test = [_t("shift", 0.5, 1e-9)]
    assert decide(_result(tests=test), POLICY).verdict == "retrain"
    assert decide(_result(tests=test), PolicySettings(centroid_shift_retrain=0.6)).verdict == (
        "no_drift"
    )
    mix = _mix(0.15, 0.001)
    assert decide(_result(mix=mix), PolicySettings(psi_watch=0.2)).verdict == "no_drift"
    assert decide(_result(mix=mix), PolicySettings(mix_alpha=0.0005)).verdict == "no_drift"


def test_verdicts_are_the_documented_four() -> None:
    assert VERDICTS == ("no_drift", "watch", "retrain", "insufficient_data")


def test_holm_steps_down() -> None:
    from persona.monitoring.stats import holm

    p = np.array([0.001, 0.04, 0.03, np.nan, 0.5])
    assert holm(p, 0.05).tolist() == [True, False, False, False, False]
    assert holm(np.array([0.001, 0.012, 0.02]), 0.05).tolist() == [True, True, True]


def _changed(name: str, value: Any) -> Any:
    """Another valid value of a policy setting."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return value * 0.5 if name != "distance_ratio_retrain" else value + 0.1


@pytest.mark.parametrize("name", sorted(PolicySettings.model_fields))
def test_every_policy_setting_changes_the_verdict_key(name: str) -> None:
    key = verdict_key(POLICY, 42)
    changed = PolicySettings(**{name: _changed(name, getattr(POLICY, name))})
    assert verdict_key(changed, 42) != key
    assert verdict_key(PolicySettings(), 42) == key


def test_verdict_key_follows_new_settings_and_the_seed() -> None:
    class WithNewThreshold(PolicySettings):
        new_threshold: float = 0.5

    key = verdict_key(POLICY, 42)
    assert verdict_key(WithNewThreshold(), 42) != key  # a new field joins by itself
    assert verdict_key(POLICY, 43) != key


def test_verdict_key_of_the_defaults_is_the_stored_runs_key() -> None:
    """Runs stored before the policy section existed keep their key (no re-check)."""
    digest = hashlib.sha256(verdict_key(POLICY, 42).encode()).hexdigest()
    assert digest == "e576f2e5b2c49155358c89e773eb95911deb3d9a891bdeb18dbd041ff0559b0b"


def test_results_keep_the_stored_json_keys() -> None:
    """`to_dict` gives the keys `monitoring_runs.persona_fit` and `--json` always had."""
    far = TailExcess(21.0, 1, 15, 1.0, 0.03, 0.028, 4e-9)
    result = _result(tests=[_t("shift", 1.5, 1e-9)], far=far)
    doc = result.to_dict()
    assert list(doc) == ["n_current", "n_reference", "drift", "persona_fit", "seed", "params"]
    fit = doc["persona_fit"]
    assert list(fit) == [
        "unassigned_rate", "reference_unassigned_rate", "far", "mean_distance",
        "reference_mean_distance", "distance_ratio", "p95_distance", "reference_p95_distance",
        "p95_distance_ratio", "mix", "centroid_shift", "max_centroid_shift",
        "max_centroid_shift_persona", "max_centroid_shift_pvalue", "tests", "segment",
    ]  # fmt: skip
    # Migrated: the mix test's between-month overdispersion and its factor were added
    # last; every earlier key keeps its place (stored runs simply lack the two).
    assert list(fit["mix"]) == [
        "bins", "current_shares", "reference_shares", "assigned_shares", "psi", "chi2",
        "chi2_pvalue", "overdispersion", "dispersion",
    ]  # fmt: skip
    assert (fit["mix"]["overdispersion"], fit["mix"]["dispersion"]) == (0.0, 1.0)
    assert fit["mix"]["bins"] == ["a", "b"]
    assert list(fit["far"]) == ["threshold", "m", "count", "expected", "rate", "excess", "pvalue"]
    shift = {"kind": "shift", "persona": "a", "feature": None, "effect": 1.5, "pvalue": 1e-9}
    assert fit["tests"] == [shift]
    assert decide(result, POLICY).to_dict()["fired"] == [shift]
    assert list(PersonaShift(3, 4).to_dict()) == [
        "shift", "pvalue", "spread_ratio", "spread_pvalue", "n_current", "n_reference",
    ]  # fmt: skip


def test_the_far_threshold_is_named_by_its_rank() -> None:
    from persona.monitoring.policy import _farthest

    names = [_farthest(m) for m in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)]
    assert names == [
        "farthest", "2nd-farthest", "3rd-farthest", "4th-farthest", "11th-farthest",
        "12th-farthest", "13th-farthest", "21st-farthest", "22nd-farthest", "101st-farthest",
    ]  # fmt: skip
