"""Monitoring results as frozen values: the persona fit and the recorded check.

`fit` computes the persona fit and `policy` judges it; `run_check` returns the recorded
check.

Each type's `to_dict` is the JSON the platform has always stored (``monitoring_runs.
persona_fit``) and printed (``persona monitor --json``): same keys, same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from persona.monitoring.drift import FeatureDrift
from persona.monitoring.stats import TailExcess
from persona.months import Month, Window


@dataclass(frozen=True)
class FitTest:
    """One persona-fit test: its kind, where it looked, its effect size and p-value.

    Attributes:
        kind: ``shift``, ``feature_shift``, ``spread``, ``feature_spread``, ``far``,
            ``unassigned`` or ``gone`` (see `monitoring.fit`).
        persona: The persona tested (None for the month-wide ``far`` / ``unassigned``).
        feature: The feature tested (``feature_*`` kinds only).
        effect: The effect size in the kind's unit (std, ratio, excess rate...).
        pvalue: The test's p-value.
    """

    kind: str
    persona: str | None
    feature: str | None
    effect: float
    pvalue: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class PersonaShift:
    """Location and spread of one persona's current rows against its reference rows.

    Attributes:
        n_current: Current rows nearest to the persona.
        n_reference: Reference rows likewise.
        shift: Mean difference in pooled std, over the features (None: too few rows).
        pvalue: Combined p-value of the per-feature location tests.
        spread_ratio: Mean distance to the persona's mean, current / reference.
        spread_pvalue: P-value of the spread test.
    """

    n_current: int
    n_reference: int
    shift: float | None = None
    pvalue: float | None = None
    spread_ratio: float | None = None
    spread_pvalue: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "shift": self.shift,
            "pvalue": self.pvalue,
            "spread_ratio": self.spread_ratio,
            "spread_pvalue": self.spread_pvalue,
            "n_current": self.n_current,
            "n_reference": self.n_reference,
        }


@dataclass(frozen=True)
class PersonaMix:
    """Shares of the nearest persona on both sides, their PSI and a chi-square test.

    Attributes:
        bins: The persona ids, in model order.
        current_shares: Share of the current rows per persona.
        reference_shares: Share of the reference rows per persona.
        assigned_shares: Current shares with unassigned rows as a bin of their own.
        psi: Population stability index (a pseudo-count of 0.5 per bin).
        chi2: Chi-square statistic of homogeneity (current vs reference counts).
        chi2_pvalue: Its p-value after dividing it by `dispersion` (chi-square, bins - 1 df).
        overdispersion: Between-month overdispersion of the shares that the reference's
            months show (Dirichlet-multinomial intra-class correlation; 0 = multinomial).
        dispersion: The factor (>= 1) the statistic is divided by: the variance of the
            share differences with that overdispersion over their multinomial variance.
    """

    bins: tuple[str, ...]
    current_shares: dict[str, float]
    reference_shares: dict[str, float]
    assigned_shares: dict[str, float]
    psi: float
    chi2: float
    chi2_pvalue: float
    overdispersion: float = 0.0
    dispersion: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (runs stored before the dispersion lack its two keys)."""
        return {
            "bins": list(self.bins),
            "current_shares": dict(self.current_shares),
            "reference_shares": dict(self.reference_shares),
            "assigned_shares": dict(self.assigned_shares),
            "psi": self.psi,
            "chi2": self.chi2,
            "chi2_pvalue": self.chi2_pvalue,
            "overdispersion": self.overdispersion,
            "dispersion": self.dispersion,
        }


@dataclass(frozen=True)
class Segment:
    """The current rows that fit no persona: beyond the reference's extreme distance.

    Attributes:
        rows: Current rows beyond the ``far`` threshold.
        rate: Their share of the current month.
        nearest_persona: The persona most of them are nearest to (None: no such rows).
        nearest_rows: How many of them are nearest to it.
        differences: Per feature, the mean of those rows minus that persona's reference
            mean, in the persona's reference std; largest absolute value first.
    """

    rows: int
    rate: float
    nearest_persona: str | None = None
    nearest_rows: int = 0
    differences: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "rows": self.rows,
            "rate": self.rate,
            "nearest_persona": self.nearest_persona,
            "nearest_rows": self.nearest_rows,
            "differences": dict(self.differences),
        }


@dataclass(frozen=True)
class PersonaFit:
    """Every persona-fit measurement of a month against its reference (`fit.persona_fit`).

    Attributes:
        unassigned_rate: Share of current rows beyond every radius (None: no rows).
        reference_unassigned_rate: The reference's share.
        far: The rows-beyond-the-reference's-extreme test (None: not computed).
        mean_distance: Mean distance of assigned current rows to their persona.
        reference_mean_distance: The reference's.
        distance_ratio: Current / reference mean distance.
        p95_distance: 95th percentile of those distances.
        reference_p95_distance: The reference's.
        p95_distance_ratio: Current / reference p95.
        mix: The persona mix.
        centroid_shift: Per persona id, its location and spread.
        max_centroid_shift: The largest persona shift (std).
        max_centroid_shift_persona: The persona that moved most.
        max_centroid_shift_pvalue: Its combined p-value.
        tests: Every test, for Holm's procedure in `policy`.
        segment: The rows that fit no persona, described (None: no current rows).
    """

    unassigned_rate: float | None
    reference_unassigned_rate: float | None
    far: TailExcess | None
    mean_distance: float | None
    reference_mean_distance: float | None
    distance_ratio: float | None
    p95_distance: float | None
    reference_p95_distance: float | None
    p95_distance_ratio: float | None
    mix: PersonaMix
    centroid_shift: dict[str, PersonaShift] = field(default_factory=dict)
    max_centroid_shift: float | None = None
    max_centroid_shift_persona: str | None = None
    max_centroid_shift_pvalue: float | None = None
    tests: tuple[FitTest, ...] = ()
    segment: Segment | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the stored ``persona_fit`` document)."""
        return {
            "unassigned_rate": self.unassigned_rate,
            "reference_unassigned_rate": self.reference_unassigned_rate,
            "far": self.far.to_dict() if self.far is not None else None,
            "mean_distance": self.mean_distance,
            "reference_mean_distance": self.reference_mean_distance,
            "distance_ratio": self.distance_ratio,
            "p95_distance": self.p95_distance,
            "reference_p95_distance": self.reference_p95_distance,
            "p95_distance_ratio": self.p95_distance_ratio,
            "mix": self.mix.to_dict(),
            "centroid_shift": {pid: s.to_dict() for pid, s in self.centroid_shift.items()},
            "max_centroid_shift": self.max_centroid_shift,
            "max_centroid_shift_persona": self.max_centroid_shift_persona,
            "max_centroid_shift_pvalue": self.max_centroid_shift_pvalue,
            "tests": [t.to_dict() for t in self.tests],
            "segment": self.segment.to_dict() if self.segment is not None else None,
        }


@dataclass(frozen=True)
class CheckRun:
    """A recorded monitoring check (`run_check`): verdict, measurements, where they went.

    Attributes:
        run_id: Its row in ``monitoring_runs`` (None before it is recorded).
        month: The checked month.
        reference_months: The reference window.
        model_name: The registered model that labelled both sides.
        model_version: Its version.
        data_hash: The idempotence key (data fingerprints + `run.verdict_key`).
        verdict: One of `policy.VERDICTS`.
        reasons: The decision's reasons.
        n_current: Rows of the month.
        n_reference: Rows of the reference window.
        n_current_sampled: Rows the K-S test ran on (None: no drift test).
        n_reference_sampled: Likewise for the reference.
        drift_share: Share of drifted features (None: no drift test).
        dataset_drift: Evidently's dataset-level flag (information).
        features: Per-feature K-S results.
        persona_fit: The persona-fit document as stored (`PersonaFit.to_dict`; {} if none).
        report_path: The Evidently HTML report (None: none written).
        mlflow_run_id: The MLflow run (None: not logged).
        created_at: When it was recorded (a stored run only).
        existing: Whether an identical stored run was returned instead of a new check.
    """

    run_id: int | None
    month: Month
    reference_months: Window
    model_name: str
    model_version: str
    data_hash: str
    verdict: str
    reasons: tuple[str, ...]
    n_current: int
    n_reference: int
    n_current_sampled: int | None
    n_reference_sampled: int | None
    drift_share: float | None
    dataset_drift: bool | None
    features: tuple[FeatureDrift, ...]
    persona_fit: dict[str, Any]
    report_path: str | None
    mlflow_run_id: str | None
    created_at: str | None
    existing: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any], existing: bool = False) -> CheckRun:
        """The check of a ``monitoring_runs`` row (as stored, or about to be)."""
        refs = row["reference_months"]
        return cls(
            run_id=row.get("run_id"),
            month=Month(row["survey_month"]),
            reference_months=Window.of(refs.split(",") if isinstance(refs, str) else refs),
            model_name=row["model_name"],
            model_version=str(row["model_version"]),
            data_hash=row["data_hash"],
            verdict=row["decision"],
            reasons=tuple(row["reasons"]),
            n_current=row["n_current"],
            n_reference=row["n_reference"],
            n_current_sampled=row.get("n_current_sampled"),
            n_reference_sampled=row.get("n_reference_sampled"),
            drift_share=row.get("drift_share"),
            dataset_drift=row.get("dataset_drift"),
            features=tuple(FeatureDrift(**f) for f in row["feature_results"]),
            persona_fit=row["persona_fit"],
            report_path=row.get("report_path"),
            mlflow_run_id=row.get("mlflow_run_id"),
            created_at=str(row["created_at"]) if row.get("created_at") else None,
            existing=existing,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (`persona monitor --json`)."""
        return {
            "run_id": self.run_id,
            "month": self.month,
            "reference_months": self.reference_months.to_list(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "data_hash": self.data_hash,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "n_current_sampled": self.n_current_sampled,
            "n_reference_sampled": self.n_reference_sampled,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "features": [f.to_dict() for f in self.features],
            "persona_fit": self.persona_fit,
            "report_path": self.report_path,
            "mlflow_run_id": self.mlflow_run_id,
            "created_at": self.created_at,
            "existing": self.existing,
        }
