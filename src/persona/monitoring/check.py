"""`check`: data drift + persona fit of a current month against a reference window (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persona.errors import MonitoringError
from persona.model import PersonaModel
from persona.monitoring.drift import STATTEST, DriftResult, data_drift
from persona.monitoring.fit import persona_fit
from persona.monitoring.results import PersonaFit
from persona.settings import PolicySettings


@dataclass(frozen=True)
class CheckResult:
    """Everything measured by one check.

    Attributes:
        n_current: Rows of the current month.
        n_reference: Rows of the reference window.
        drift: Evidently drift results (None when the current month is too small).
        fit: Persona-fit metrics (None when the current month is empty).
        seed: Seed used for sampling.
        params: The thresholds and test the check ran with.
    """

    n_current: int
    n_reference: int
    drift: DriftResult | None
    fit: PersonaFit | None
    seed: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the Evidently snapshot is left out)."""
        return {
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "drift": self.drift.to_dict() if self.drift is not None else None,
            "persona_fit": self.fit.to_dict() if self.fit is not None else None,
            "seed": self.seed,
            "params": self.params,
        }


def _as_matrix(x: Any, side: str, n_features: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, n_features)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise MonitoringError(
            f"{side} data has shape {arr.shape}; expected (rows, {n_features}) feature columns"
        )
    if not np.isfinite(arr).all():
        raise MonitoringError(f"{side} data holds missing or non-finite values")
    return arr


def check(
    current_x: np.ndarray,
    reference_x: np.ndarray,
    model: PersonaModel,
    policy: PolicySettings,
    *,
    seed: int,
    unassigned_floor: float,
    evidently: bool = True,
    reference_months: np.ndarray | None = None,
) -> CheckResult:
    """Measure data drift and persona fit of the current rows against the reference rows.

    Pure: no I/O. The persona-fit tests (which alone decide the verdict) use every row.
    Evidently's marginal K-S report runs on at most `policy.drift_sample_rows` rows per
    side (a seeded sample) and only informs; a current month below
    `policy.min_month_rows` skips it (the decision will be ``insufficient_data``).

    Args:
        current_x: Current month, float64 (rows, features) in model feature order.
        reference_x: Reference window, same columns.
        model: The champion model that labels both sides.
        policy: Thresholds and the sample limit (`Settings.policy`).
        seed: Seed of the sampling.
        unassigned_floor: Smallest null rate of the ``unassigned`` test: the share the
            model's radii leave out by construction, ``1 - RADIUS_QUANTILE``.
        evidently: Run the Evidently report (the policy evaluation skips it: the verdict
            does not depend on it).
        reference_months: The month of each reference row (any labels; None: one month):
            the mix test reads the between-month wander of the shares from them.

    Returns:
        The check result.

    Raises:
        MonitoringError: The reference is empty, or either side has the wrong columns.
    """
    n_features = len(model.feature_names)
    cur = _as_matrix(current_x, "current", n_features)
    ref = _as_matrix(reference_x, "reference", n_features)
    if len(ref) == 0:
        raise MonitoringError("the reference window has no rows; choose months with data")
    if reference_months is not None and len(reference_months) != len(ref):
        raise MonitoringError(
            f"{len(reference_months)} reference month labels for {len(ref)} reference rows"
        )
    params = {
        "stattest": STATTEST,
        "feature_threshold": policy.drift_feature_threshold,
        "sample_rows": policy.drift_sample_rows,
        "min_month_rows": policy.min_month_rows,
        "persona_fit_alpha": policy.persona_fit_alpha,
        "far_tail_share": policy.far_tail_share,
    }
    fit = None
    if len(cur):
        fit = persona_fit(
            cur,
            ref,
            model.predict(cur),
            model.predict(ref),
            model,
            far_tail=policy.far_tail_share,
            unassigned_floor=unassigned_floor,
            reference_months=reference_months,
        )
    drift = None
    if evidently and len(cur) >= policy.min_month_rows:
        drift = data_drift(
            cur,
            ref,
            sample_rows_limit=policy.drift_sample_rows,
            threshold=policy.drift_feature_threshold,
            drift_share=policy.drift_share_retrain,
            seed=seed,
            features=tuple(model.feature_names),
        )
    return CheckResult(len(cur), len(ref), drift, fit, seed, params)
