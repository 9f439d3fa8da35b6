"""Promotion gates: a challenger must not be worse and must keep the champion's labels.

1. **metric**: the selection metric (`SELECTION_METRIC`) of each model's labelling of the
   same current data; the challenger passes when it is not worse than the champion by more
   than `GATE_METRIC_TOLERANCE` x |champion score| (relative tolerance).
2. **label_stability**: the share of rows of the champion's own training/calibration data
   that get the same persona id from both models must be >= `GATE_MIN_LABEL_STABILITY`,
   unless drift demanded a change (`drift_demanded`): then the check is reported, waived.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from persona.model import PersonaModel
from persona.settings import Settings
from persona.training import LOWER_IS_BETTER, label_stability, score_labels


@dataclass(frozen=True)
class GateResult:
    """Outcome of the promotion gates.

    Attributes:
        passed: Whether every (non-waived) check passed.
        metric: The selection metric compared.
        champion_score: The champion's score on the current data.
        challenger_score: The challenger's score on the same data.
        label_stability: Share of the champion's data with unchanged labels.
        drift_demanded: Whether the stability check was waived.
        checks: ``{name, passed, waived, detail}`` per check.
    """

    passed: bool
    metric: str
    champion_score: float
    challenger_score: float
    label_stability: float
    drift_demanded: bool
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN written as None)."""
        data = asdict(self)
        for key in ("champion_score", "challenger_score", "label_stability"):
            if not np.isfinite(data[key]):
                data[key] = None
        return data


def model_score(
    model: PersonaModel, features: np.ndarray, metric: str, sample_rows: int, seed: int
) -> float:
    """Score a model's nearest-persona partition of `features` with `metric` (NaN if < 2)."""
    pred = model.predict(features)
    inertia = float(np.sum(pred.distance**2))
    return score_labels(features, pred.nearest_index, inertia, sample_rows, seed)[metric]


def evaluate_gates(
    champion: PersonaModel,
    challenger: PersonaModel,
    current: np.ndarray,
    champion_data: np.ndarray,
    settings: Settings,
    drift_demanded: bool,
) -> GateResult:
    """Run the promotion gates (rules in the module docstring).

    Args:
        champion: The model serving now.
        challenger: The candidate.
        current: Current data (the challenger's training window).
        champion_data: The champion's own training / calibration rows.
        settings: Gate settings and the selection metric.
        drift_demanded: Monitoring decided the personas must change (waives stability).

    Returns:
        The verdict and every check.
    """
    metric = settings.selection_metric
    args = (metric, settings.silhouette_sample_rows, settings.random_seed)
    old = model_score(champion, current, *args)
    new = model_score(challenger, current, *args)
    slack = settings.gate_metric_tolerance * abs(old) if np.isfinite(old) else 0.0
    if not np.isfinite(new):
        metric_ok = not np.isfinite(old)
    elif not np.isfinite(old):
        metric_ok = True
    elif metric in LOWER_IS_BETTER:
        metric_ok = new <= old + slack
    else:
        metric_ok = new >= old - slack
    stability = label_stability(champion, challenger, champion_data)
    stable_ok = stability >= settings.gate_min_label_stability
    checks = [
        {
            "name": "metric",
            "passed": bool(metric_ok),
            "waived": False,
            "detail": f"{metric}: challenger {new:.6g} vs champion {old:.6g} "
            f"(tolerance {settings.gate_metric_tolerance:.0%})",
        },
        {
            "name": "label_stability",
            "passed": bool(stable_ok),
            "waived": bool(drift_demanded and not stable_ok),
            "detail": f"{stability:.2%} of the champion's data keep their persona "
            f"(minimum {settings.gate_min_label_stability:.0%})"
            + ("; waived: drift demanded a change" if drift_demanded else ""),
        },
    ]
    passed = all(c["passed"] or c["waived"] for c in checks)
    return GateResult(passed, metric, old, new, stability, drift_demanded, checks)
