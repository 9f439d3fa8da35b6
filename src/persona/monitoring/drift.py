"""Per-feature data drift with Evidently 0.7 (`DataDriftPreset`), on seeded samples.

The test is fixed to two-sample Kolmogorov-Smirnov for every feature. Evidently's default
picks K-S up to 1000 reference rows and normed Wasserstein above, so the same month would
be judged by a different test (and a threshold with another meaning) depending on how large
the reference window is. With K-S fixed, a feature verdict always means "p-value below
`DRIFT_FEATURE_THRESHOLD`", and sampling both sides to at most `DRIFT_SAMPLE_ROWS` rows
bounds how small a shift the test can call significant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from persona.features import FEATURE_NAMES

STATTEST = "ks"
STATTEST_NAME = "K-S p_value"


@dataclass(frozen=True)
class FeatureDrift:
    """Drift verdict of one feature.

    Attributes:
        feature: Column name.
        test: Statistical test (``"ks"``).
        score: The test's value (a p-value for K-S).
        threshold: Drift when the p-value is below it.
        drifted: The verdict.
    """

    feature: str
    test: str
    score: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class DriftResult:
    """Dataset-level and per-feature drift.

    Attributes:
        features: One verdict per feature, in feature order.
        drift_share: Share of drifted features.
        dataset_drift: Whether the share reaches the dataset-level threshold.
        n_current: Rows of the current month.
        n_reference: Rows of the reference window.
        n_current_used: Rows the test ran on (a seeded sample when above the limit).
        n_reference_used: Likewise for the reference.
        snapshot: The Evidently snapshot (for the HTML report); not serialised.
    """

    features: list[FeatureDrift]
    drift_share: float
    dataset_drift: bool
    n_current: int
    n_reference: int
    n_current_used: int
    n_reference_used: int
    snapshot: Any = field(default=None, repr=False, compare=False)

    @property
    def sampled(self) -> bool:
        """Whether either side was sampled."""
        return self.n_current_used < self.n_current or self.n_reference_used < self.n_reference

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (without the snapshot)."""
        return {
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "n_current_used": self.n_current_used,
            "n_reference_used": self.n_reference_used,
            "sampled": self.sampled,
            "features": [f.to_dict() for f in self.features],
        }


def sample_rows(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Return at most `limit` rows of `x`, a seeded sample without replacement when larger.

    Args:
        x: Array of shape (rows, features).
        limit: Maximum rows kept.
        rng: Random generator (seeded by the caller).

    Returns:
        `x` itself when small enough, else `limit` rows in their original order.
    """
    if len(x) <= limit:
        return x
    index = np.sort(rng.choice(len(x), size=limit, replace=False))
    return x[index]


def data_drift(
    current_x: np.ndarray,
    reference_x: np.ndarray,
    *,
    sample_rows_limit: int,
    threshold: float,
    drift_share: float,
    seed: int,
    features: tuple[str, ...] = FEATURE_NAMES,
) -> DriftResult:
    """Run Evidently's `DataDriftPreset` (K-S on every feature) on seeded samples.

    Args:
        current_x: Current month, shape (rows, features).
        reference_x: Reference window, same columns.
        sample_rows_limit: Per-side row limit above which a seeded sample is used.
        threshold: K-S p-value below which a feature has drifted.
        drift_share: Share of drifted features that makes dataset-level drift.
        seed: Seed of the sampling.
        features: Column names.

    Returns:
        The per-feature verdicts, the drifted share and the sample sizes.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(seed)
    cur = sample_rows(current_x, sample_rows_limit, rng)
    ref = sample_rows(reference_x, sample_rows_limit, rng)
    cols = list(features)
    definition = DataDefinition(numerical_columns=cols)
    report = Report(
        [DataDriftPreset(method=STATTEST, threshold=threshold, drift_share=drift_share)],
        metadata={
            "n_current": len(current_x),
            "n_reference": len(reference_x),
            "n_current_used": len(cur),
            "n_reference_used": len(ref),
        },
    )
    snapshot = report.run(
        Dataset.from_pandas(pd.DataFrame(cur, columns=cols), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame(ref, columns=cols), data_definition=definition),
    )
    results = _parse(snapshot.dict(), threshold)
    verdicts = [results[c] for c in cols]
    share = sum(f.drifted for f in verdicts) / len(verdicts)
    return DriftResult(
        features=verdicts,
        drift_share=share,
        dataset_drift=share >= drift_share,
        n_current=len(current_x),
        n_reference=len(reference_x),
        n_current_used=len(cur),
        n_reference_used=len(ref),
        snapshot=snapshot,
    )


def _parse(snapshot: dict[str, Any], threshold: float) -> dict[str, FeatureDrift]:
    """Read the `ValueDrift` metrics of a snapshot dict into verdicts keyed by column."""
    out: dict[str, FeatureDrift] = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        score = float(metric["value"])
        method = str(config.get("method") or STATTEST)
        limit = float(config.get("threshold") or threshold)
        drifted = score < limit if method == "ks" else score >= limit
        out[str(config["column"])] = FeatureDrift(
            str(config["column"]), method, score, limit, bool(drifted)
        )
    return out
