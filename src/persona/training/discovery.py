"""Discovery: a cluster that holds two groups is split, so a new segment becomes a candidate.

K-Means warm-started from the champion keeps k personas; a new segment 12-20 away from a
persona is then absorbed by it (its centroid moves a little, its radius grows a lot). The
second-mode test finds it: each cluster is split in two by 2-means and the split kept when
the two halves are separate groups, not the two halves of one blob. Along the line through
the two half-centroids, the gap between the halves' means is measured in their pooled
standard deviation: halving one Gaussian blob gives about 2.7, two groups 12 apart with
std 2 about 6. A split needs `split_min_separation` and at least `candidate_min_rows` rows
on each side. K-Means is then refitted from the enlarged set of centroids, and the loop
goes on until no cluster splits or `k_max` is reached. The extra cluster has no persona to
align to, so it becomes ``candidate-N``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from persona.settings import TrainingSettings


@dataclass(frozen=True)
class Split:
    """The best split of one cluster.

    Attributes:
        cluster: Index of the split cluster.
        separation: Gap between the halves in pooled std along their axis.
        sizes: Rows in each half.
        centroids: The two half-centroids, shape (2, features).
    """

    cluster: int
    separation: float
    sizes: tuple[int, int]
    centroids: np.ndarray


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each row."""
    sq = np.sum(x**2, axis=1)[:, None] - 2.0 * x @ centroids.T + np.sum(centroids**2, axis=1)
    return np.argmin(sq, axis=1)


def separation(rows: np.ndarray, labels: np.ndarray) -> float:
    """Gap between two groups' means along the axis joining them, in pooled std."""
    a, b = rows[labels == 0], rows[labels == 1]
    axis = a.mean(axis=0) - b.mean(axis=0)
    norm = float(np.linalg.norm(axis))
    if norm == 0.0 or len(a) < 2 or len(b) < 2:
        return 0.0
    pa, pb = a @ (axis / norm), b @ (axis / norm)
    pooled = ((len(pa) - 1) * pa.var(ddof=1) + (len(pb) - 1) * pb.var(ddof=1)) / (
        len(pa) + len(pb) - 2
    )
    return float((pa.mean() - pb.mean()) / np.sqrt(max(pooled, 1e-12)))


def best_split(
    x: np.ndarray, centroids: np.ndarray, min_rows: int, seed: int, n_init: int
) -> Split | None:
    """The cluster whose 2-means split is the most separated (None without any cluster)."""
    labels = nearest(x, centroids)
    best: Split | None = None
    for cluster in range(len(centroids)):
        rows = x[labels == cluster]
        if len(rows) < 2 * min_rows:
            continue
        halves = KMeans(n_clusters=2, n_init=n_init, random_state=seed).fit(rows)
        sizes = np.bincount(halves.labels_, minlength=2)
        if sizes.min() < min_rows:
            continue
        gap = separation(rows, halves.labels_)
        if best is None or gap > best.separation:
            best = Split(cluster, gap, (int(sizes[0]), int(sizes[1])), halves.cluster_centers_)
    return best


def discover(
    x: np.ndarray, centroids: np.ndarray, params: TrainingSettings
) -> tuple[np.ndarray, list[Split]]:
    """Split clusters that hold two groups, refitting K-Means after each split.

    Args:
        x: Training rows.
        centroids: Centroids of the selected clustering.
        params: The training settings: never beyond `k_max` clusters; a split needs
            `split_min_separation` (see the module docstring) and `candidate_min_rows`
            rows in each half; the 2-means splits use `random_seed` and `kmeans_n_init`.

    Returns:
        ``(centroids, splits)``: the final centroids and every split made, in order.
    """
    seed, n_init = params.random_seed, params.kmeans_n_init
    splits: list[Split] = []
    current = np.asarray(centroids, dtype=np.float64)
    while len(current) < params.k_max:
        split = best_split(x, current, params.candidate_min_rows, seed, n_init)
        if split is None or split.separation < params.split_min_separation:
            break
        grown = np.vstack([np.delete(current, split.cluster, axis=0), split.centroids])
        refit = KMeans(n_clusters=len(grown), init=grown, n_init=1, random_state=seed).fit(x)
        current = refit.cluster_centers_
        splits.append(split)
    return current, splits
