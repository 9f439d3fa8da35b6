"""The k sweep: data checks, K-Means per k (warm start at the current k), scores, selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from persona.errors import ModelError
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel
from persona.settings import TrainingSettings

METRICS: tuple[str, ...] = (
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "silhouette_inertia_ratio",
)
LOWER_IS_BETTER = frozenset({"davies_bouldin"})
_SILHOUETTE_MEMORY_MIB = 64


def check_training_data(features: np.ndarray, k: int = 1) -> np.ndarray:
    """Check rows before clustering.

    Args:
        features: Array of shape (rows, 10).
        k: Smallest number of clusters that will be fitted.

    Returns:
        The rows as a float64 array.

    Raises:
        ModelError: Empty data, wrong shape, NaN/inf values, or fewer rows than k.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ModelError(
            f"training data must have shape (rows, {len(FEATURE_NAMES)}), got {x.shape}"
        )
    if x.shape[0] == 0:
        raise ModelError("training data is empty: no rows in the requested month(s)")
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ModelError(
            f"training data has {int(bad.sum())} NaN/inf value(s), first at row {int(rows[0])} "
            f"column {FEATURE_NAMES[int(cols[0])]}"
        )
    if x.shape[0] < k:
        raise ModelError(f"training data has {x.shape[0]} rows, fewer than k={k}")
    return x


def score_labels(
    features: np.ndarray, labels: np.ndarray, inertia: float, sample_rows: int, seed: int
) -> dict[str, float]:
    """Score a clustering with every metric of `METRICS`.

    Args:
        features: Rows, shape (n, 10).
        labels: Cluster per row.
        inertia: Sum of squared distances to the assigned centroids.
        sample_rows: Silhouette runs on a seeded sample of this many rows above it.
        seed: Sampling seed.

    Returns:
        Metric name -> value; NaN (worst) when fewer than 2 clusters are present.
    """
    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(labels):
        return {name: float("nan") for name in METRICS}
    sample = sample_rows if len(labels) > sample_rows else None
    with config_context(working_memory=_SILHOUETTE_MEMORY_MIB):  # chunked pairwise distances
        sil = float(silhouette_score(features, labels, sample_size=sample, random_state=seed))
    return {
        "silhouette": sil,
        "calinski_harabasz": float(calinski_harabasz_score(features, labels)),
        "davies_bouldin": float(davies_bouldin_score(features, labels)),
        "silhouette_inertia_ratio": sil * 1000.0 / inertia if inertia > 0 else float("nan"),
    }


@dataclass(frozen=True)
class KFit:
    """K-Means fitted for one k of the sweep, with its scores.

    Attributes:
        k: Number of clusters.
        warm_start: Whether it started from the current model's centroids.
        inertia: Sum of squared distances to the assigned centroids.
        n_iter: K-Means iterations.
        silhouette: Silhouette score (NaN: fewer than 2 clusters).
        calinski_harabasz: Calinski-Harabasz score.
        davies_bouldin: Davies-Bouldin score (lower is better).
        silhouette_inertia_ratio: silhouette x 1000 / inertia.
        centroids: The fitted centroids, shape (k, 10).
        selected: Whether the selection rule chose this k.
    """

    k: int
    warm_start: bool
    inertia: float
    n_iter: int
    silhouette: float
    calinski_harabasz: float
    davies_bouldin: float
    silhouette_inertia_ratio: float
    centroids: np.ndarray = field(compare=False, repr=False)
    selected: bool = False

    def score(self, metric: str) -> float:
        """Return the value of one metric of `METRICS` (or ``inertia``)."""
        if metric not in (*METRICS, "inertia"):
            raise ModelError(f"unknown metric {metric!r}: expected one of {list(METRICS)}")
        return float(getattr(self, metric))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready row (no centroids), in the sweep table's key order."""
        return {
            "k": self.k,
            "warm_start": self.warm_start,
            "inertia": self.inertia,
            "n_iter": self.n_iter,
            **{name: self.score(name) for name in METRICS},
            "selected": self.selected,
        }


def fit_k(x: np.ndarray, k: int, current: PersonaModel, params: TrainingSettings) -> KFit:
    """Fit K-Means for one k and score it (warm start when k equals the current k)."""
    warm = k == current.k
    kmeans = KMeans(
        n_clusters=k,
        init=current.centroids if warm else "k-means++",
        n_init=1 if warm else params.kmeans_n_init,
        random_state=params.random_seed,
    ).fit(x)
    inertia = float(kmeans.inertia_)
    seed = params.random_seed
    metrics = score_labels(x, kmeans.labels_, inertia, params.silhouette_sample_rows, seed)
    return KFit(
        k=k,
        warm_start=warm,
        inertia=inertia,
        n_iter=int(kmeans.n_iter_),
        silhouette=metrics["silhouette"],
        calinski_harabasz=metrics["calinski_harabasz"],
        davies_bouldin=metrics["davies_bouldin"],
        silhouette_inertia_ratio=metrics["silhouette_inertia_ratio"],
        centroids=kmeans.cluster_centers_,
    )


def select_k(sweep: Sequence[KFit], metric: str, tolerance: float, current_k: int) -> int:
    """Pick k from a sweep (the rule is in the module docstring).

    Raises:
        ModelError: Unknown metric or no k with a finite score.
    """
    if metric not in METRICS:
        raise ModelError(f"unknown selection metric {metric!r}: expected one of {list(METRICS)}")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    scored = [(fit.k, sign * fit.score(metric)) for fit in sweep if np.isfinite(fit.score(metric))]
    if not scored:
        raise ModelError(f"no k in the sweep has a finite {metric}")
    best = max(score for _, score in scored)
    tied = {k for k, score in scored if score >= best - tolerance * abs(best)}
    if current_k in tied:
        return current_k
    return min(k for k, score in scored if score == best)
