"""What the steps of the monthly cycle return: frozen values, `to_dict()` for ``--json``.

Each `to_dict` gives the keys (and key order) ``persona cycle <step>`` and
``persona run-month`` have always printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from persona.alerts import AlertDelivery
from persona.cycle_state import RETRAIN
from persona.months import Month, Window
from persona.registry.results import SyncResult, TrainedVersion


@dataclass(frozen=True)
class Skipped:
    """A step that had nothing to do for the month (off its branch, or not yet due).

    Attributes:
        step: The step.
        month: The month.
        verdict: The month's verdict.
        note: Why it was skipped.
    """

    step: str
    month: Month
    verdict: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "step": self.step,
            "month": self.month,
            "skipped": True,
            "verdict": self.verdict,
            "note": self.note,
        }


@dataclass(frozen=True)
class CheckStep:
    """Step 1: the month checked, labelled, recorded and alerted.

    Attributes:
        month: The month.
        verdict: The verdict the month's cycle acts on.
        reasons: Why.
        rows: Rows of the month.
        reference_months: The reference window it was compared with.
        model_version: The model the month was checked and labelled with.
        labels_written: Labels written now (0 on a replay).
        alerts: What the alert channels answered.
        report_path: The monitoring report.
        monitoring_run_id: The run the month's cycle acts on.
        replayed: Whether an earlier cycle of the month was found.
        governance: What `registry.sync_champion` found.
        rows_rejected: Rows of the month its ingest set aside (``survey_rejects``).
    """

    month: Month
    verdict: str
    reasons: tuple[str, ...]
    rows: int
    reference_months: Window
    model_version: str
    labels_written: int
    alerts: tuple[AlertDelivery, ...]
    report_path: str | None
    monitoring_run_id: int
    replayed: bool
    governance: SyncResult
    rows_rejected: int = 0

    @property
    def branch(self) -> str:
        """``retrain`` or ``label``: the branch the cycle follows."""
        return RETRAIN if self.verdict == RETRAIN else "label"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "step": "check",
            "month": self.month,
            "branch": self.branch,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "rows": self.rows,
            "rows_rejected": self.rows_rejected,
            "reference_months": self.reference_months.to_list(),
            "model_version": self.model_version,
            "labels_written": self.labels_written,
            "alerts": [a.to_dict() for a in self.alerts],
            "report_path": self.report_path,
            "monitoring_run_id": self.monitoring_run_id,
            "replayed": self.replayed,
            "governance": self.governance.to_dict(),
        }


@dataclass(frozen=True)
class Challenger:
    """The challenger of a retrain month, as the promotion rules see it.

    Attributes:
        version: Its version number.
        gates_passed: Whether its promotion gates passed.
        needs_review: Whether a person must review it (candidate, retired, grown radius).
        training_months: Its training window.
        review_reasons: Why it needs review.
        gates: The stored gate verdict.
        created: Whether this run trained it.
    """

    version: str
    gates_passed: bool
    needs_review: bool
    training_months: Window = field(default_factory=lambda: Window(()))
    review_reasons: tuple[str, ...] = ()
    gates: dict[str, Any] | None = None
    created: bool = False

    @classmethod
    def of(cls, trained: TrainedVersion) -> Challenger:
        """The challenger view of a trained version."""
        return cls(
            version=trained.version,
            gates_passed=trained.gates_passed,
            needs_review=trained.summary.tags.get("needs_review") == "true",
            training_months=trained.training_months,
            review_reasons=trained.review_reasons,
            gates=trained.gates or None,
            created=trained.summary.created,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "challenger_version": self.version,
            "training_months": self.training_months.to_list(),
            "gates_passed": self.gates_passed,
            "needs_review": self.needs_review,
            "review_reasons": list(self.review_reasons),
            "gates": self.gates,
            "created": self.created,
        }


@dataclass(frozen=True)
class RetrainStep:
    """Step 2: the month's challenger, trained now or found.

    Attributes:
        month: The month.
        challenger: The challenger.
    """

    month: Month
    challenger: Challenger

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "step": "retrain",
            "month": self.month,
            "skipped": False,
            **self.challenger.to_dict(),
        }


@dataclass(frozen=True)
class PromoteStep:
    """Step 3: the promotion decision of the month.

    Attributes:
        month: The month.
        challenger_version: The challenger decided on.
        auto_promote: The ``AUTO_PROMOTE`` setting.
        replayed: Whether an earlier run had decided.
        promoted: Whether the challenger is champion.
        note: What was decided, for people.
    """

    month: Month
    challenger_version: str
    auto_promote: bool
    replayed: bool
    promoted: bool
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "step": "promote",
            "month": self.month,
            "skipped": False,
            "challenger_version": self.challenger_version,
            "auto_promote": self.auto_promote,
            "replayed": self.replayed,
            "promoted": self.promoted,
            "note": self.note,
        }


@dataclass(frozen=True)
class LabelStep:
    """Step 4: the month labelled with its final champion, and closed.

    Attributes:
        month: The month.
        verdict: The month's verdict.
        model_version_before: The model the month was checked with.
        model_version_after: The model that ends up champion for it.
        promoted: Whether the month's challenger was promoted.
        challenger_version: The month's challenger, if any.
        labels_written: Labels written now.
        action: The month's final action.
        persona_mix: Labels per persona id under `model_version_after`.
    """

    month: Month
    verdict: str
    model_version_before: str
    model_version_after: str
    promoted: bool
    challenger_version: str | None
    labels_written: int
    action: str | None
    persona_mix: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "step": "label",
            "month": self.month,
            "skipped": False,
            "verdict": self.verdict,
            "model_version_before": self.model_version_before,
            "model_version_after": self.model_version_after,
            "promoted": self.promoted,
            "challenger_version": self.challenger_version,
            "labels_written": self.labels_written,
            "action": self.action,
            "persona_mix": dict(self.persona_mix),
        }


StepResult = CheckStep | RetrainStep | PromoteStep | LabelStep | Skipped


@dataclass(frozen=True)
class MonthSummary:
    """The month's cycle from its four step results (what `persona run-month` prints).

    Attributes:
        checked: Step 1.
        trained: Step 2 (skipped off the retrain branch).
        promoted: Step 3 (skipped off the retrain branch).
        labelled: Step 4.
        auto_promote: The ``AUTO_PROMOTE`` setting.
    """

    checked: CheckStep
    trained: RetrainStep | Skipped
    promoted: PromoteStep | Skipped
    labelled: LabelStep
    auto_promote: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        checked, labelled = self.checked, self.labelled
        challenger = self.trained.challenger if isinstance(self.trained, RetrainStep) else None
        return {
            "month": checked.month,
            "rows": checked.rows,
            "rows_rejected": checked.rows_rejected,
            "verdict": labelled.verdict,
            "reasons": list(checked.reasons),
            "reference_months": checked.reference_months.to_list(),
            "model_version_before": labelled.model_version_before,
            "model_version_after": labelled.model_version_after,
            "labels_written": checked.labels_written + labelled.labels_written,
            "challenger_version": None if challenger is None else challenger.version,
            "training_months": None if challenger is None else challenger.training_months.to_list(),
            "gates_passed": None if challenger is None else challenger.gates_passed,
            "needs_review": None if challenger is None else challenger.needs_review,
            "review_reasons": None if challenger is None else list(challenger.review_reasons),
            "promoted": labelled.promoted,
            "promotion_note": self.promoted.note,
            "auto_promote": self.auto_promote,
            "action": labelled.action,
            "alerts": [a.to_dict() for a in checked.alerts],
            "persona_mix": dict(labelled.persona_mix),
            "report_path": checked.report_path,
            "monitoring_run_id": checked.monitoring_run_id,
            "replayed": checked.replayed,
            "governance": checked.governance.to_dict(),
        }
