"""Result values of the registry and the cycle: `to_dict()` keeps the ``--json`` keys."""

from __future__ import annotations

import numpy as np

from persona.cycle_results import (
    Challenger,
    CheckStep,
    LabelStep,
    MonthSummary,
    PromoteStep,
    RetrainStep,
    Skipped,
)
from persona.months import Month, Window
from persona.registry.gates import GateResult
from persona.registry.results import (
    PromotionResult,
    RollbackResult,
    SyncResult,
    TrainedVersion,
    VersionSummary,
)
from persona.training import KFit

MARCH = Month("2025-03")
GATES = GateResult(True, "silhouette", 0.5, 0.5, 1.0, False)


def _trained(**extra: object) -> TrainedVersion:
    summary = VersionSummary("2", True, ("challenger",), {"needs_review": "false"})
    return TrainedVersion(
        summary, Window.of(["2025-02", "2025-03"]), "abc", 3, ("a", "b", "c"), (), (), 1.0,
        GATES.to_dict(), False, (), (), **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_promotion_results_keep_each_variant_s_keys() -> None:
    assert list(PromotionResult(False, "2", "2", "already").to_dict()) == [
        "promoted", "version", "previous", "note",
    ]  # fmt: skip
    refused = PromotionResult(False, "2", "1", "refused by the promotion gates", GATES)
    assert list(refused.to_dict()) == ["promoted", "version", "previous", "gates", "note"]
    moved = PromotionResult(True, "2", "1", None, None, True, 7).to_dict()
    assert moved == {"promoted": True, "version": "2", "previous": "1", "forced": True,
                     "gates": None, "event_id": 7, "relabelled": []}  # fmt: skip
    back = RollbackResult("1", "2", 8).to_dict()
    assert back == {"rolled_back": True, "version": "1", "previous": "2", "event_id": 8}


def test_trained_version_and_sync_keys() -> None:
    found = _trained().to_dict()
    assert list(found) == [
        "version", "created", "aliases", "tags", "training_months", "data_hash", "k",
        "personas", "candidates", "retired", "label_stability", "gates", "needs_review",
        "review_reasons", "candidates_detail", "review", "alert",
    ]  # fmt: skip
    assert found["training_months"] == ["2025-02", "2025-03"]
    fit = KFit(3, True, 2.0, 4, 0.5, 10.0, 0.7, 250.0, np.zeros((3, 10)), selected=True)
    new = _trained(run_id="r1", sweep=(fit,)).to_dict()
    assert new["run_id"] == "r1" and new["sweep"] == [
        {"k": 3, "warm_start": True, "inertia": 2.0, "n_iter": 4, "silhouette": 0.5,
         "calinski_harabasz": 10.0, "davies_bouldin": 0.7, "silhouette_inertia_ratio": 250.0,
         "selected": True},
    ]  # fmt: skip
    assert SyncResult(champion="1").to_dict() == {
        "moved": False, "champion": "1", "previous": None, "event_id": None, "gates": None,
        "gates_error": None, "challenger_cleared": False, "alerts": [], "relabelled": [],
    }  # fmt: skip


def test_month_summary_from_the_step_results() -> None:
    checked = CheckStep(
        MARCH, "retrain", ("drift",), 300, Window.of(["2025-01"]), "1", 300, (), "r.html", 4,
        False, SyncResult(champion="1"),
    )  # fmt: skip
    assert checked.to_dict()["branch"] == "retrain" and checked.to_dict()["step"] == "check"
    trained = RetrainStep(MARCH, Challenger.of(_trained()))
    assert trained.to_dict()["challenger_version"] == "2" and trained.to_dict()["gates_passed"]
    promoted = PromoteStep(MARCH, "2", True, False, True, "promoted")
    labelled = LabelStep(MARCH, "retrain", "1", "2", True, "2", 300, "retrained_promoted",
                         {"a": 300})  # fmt: skip
    summary = MonthSummary(checked, trained, promoted, labelled, True).to_dict()
    assert summary["labels_written"] == 600 and summary["promotion_note"] == "promoted"
    assert summary["training_months"] == ["2025-02", "2025-03"]
    quiet = MonthSummary(
        checked, Skipped("retrain", MARCH, "no_drift", "no retrain"),
        Skipped("promote", MARCH, "no_drift", "no promotion"), labelled, False,
    ).to_dict()  # fmt: skip
    assert quiet["challenger_version"] is None and quiet["promotion_note"] == "no promotion"
    assert Skipped("label", MARCH, "retrain", "later").to_dict()["skipped"] is True
