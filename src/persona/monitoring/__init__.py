"""Drift and persona-fit monitoring: Evidently data drift, persona-fit metrics, the decision.

- `check(current_x, reference_x, model, settings, seed=...)` measures (pure).
- `decide(result, settings)` turns the measurements into a verdict with reasons.
- `run_check(settings, engine, month, ...)` loads a month from the store, checks, saves the
  Evidently HTML report, logs to MLflow and records the run in `monitoring_runs`.

Evidently and MLflow are imported inside the functions that use them, so importing this
package is cheap.
"""

from __future__ import annotations

from persona.monitoring.check import CheckResult, check
from persona.monitoring.drift import DriftResult, FeatureDrift
from persona.monitoring.policy import VERDICTS, Decision, decide
from persona.monitoring.results import CheckRun, FitTest, PersonaFit
from persona.monitoring.run import run_check

__all__ = [
    "VERDICTS",
    "CheckResult",
    "CheckRun",
    "Decision",
    "DriftResult",
    "FeatureDrift",
    "FitTest",
    "PersonaFit",
    "check",
    "decide",
    "run_check",
]
