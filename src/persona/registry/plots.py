"""Pictures of a model: the persona map (2-D PCA) and the persona profiles (Agg, no GUI)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

_MAX_POINTS = 3000


def pca_2d(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a 2-D PCA on (a seeded sample of) the rows.

    Returns:
        ``(sample, mean, components)``: the sampled rows, their mean, and (2, features)
        principal axes.
    """
    x = np.asarray(features, dtype=np.float64)
    if len(x) > _MAX_POINTS:
        x = x[np.random.default_rng(seed).choice(len(x), _MAX_POINTS, replace=False)]
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return x, mean, vt[:2]


def persona_map_png(
    features: np.ndarray,
    centroids: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    title: str,
    seed: int,
) -> Path:
    """Draw the rows (coloured by nearest centroid) and the named centroids on 2 PCs.

    Args:
        features: Rows, shape (n, 10); more than 3000 are sampled (seeded).
        centroids: Shape (k, 10).
        names: One label per centroid.
        path: Where to write the PNG.
        title: Plot title.
        seed: Sampling seed.

    Returns:
        The PNG path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sample, mean, axes = pca_2d(features, seed)
    points = (sample - mean) @ axes.T
    centres = (np.asarray(centroids) - mean) @ axes.T
    nearest = np.argmin(
        ((sample[:, None, :] - np.asarray(centroids)[None, :, :]) ** 2).sum(axis=2), axis=1
    )
    fig = Figure(figsize=(5.5, 4.5), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(points[:, 0], points[:, 1], c=nearest, cmap="tab10", s=4, alpha=0.5)
    ax.scatter(centres[:, 0], centres[:, 1], c="black", marker="x", s=60)
    for (px, py), name in zip(centres, names, strict=True):
        ax.annotate(name, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_title(f"Persona map ({title})")
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    return out


def persona_profile_png(
    feature_names: Sequence[str],
    centroids: np.ndarray,
    names: Sequence[str],
    candidates: Sequence[int],
    path: str | Path,
    title: str,
) -> Path:
    """Draw each persona's answers (x1..x10) as a line; candidates thick and dashed.

    Args:
        feature_names: The answers, in centroid order.
        centroids: Shape (k, features).
        names: One label per persona.
        candidates: Indexes of the candidate personas (marked in the legend).
        path: Where to write the PNG.
        title: Plot title.

    Returns:
        The PNG path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = np.arange(len(feature_names))
    marked = set(candidates)
    for index, (centre, name) in enumerate(zip(np.asarray(centroids), names, strict=True)):
        if index in marked:
            ax.plot(steps, centre, "--o", linewidth=3, color="crimson", label=f"{name} (new)")
        else:
            ax.plot(steps, centre, "-", linewidth=1.2, alpha=0.8, label=name)
    ax.set_xticks(steps, list(feature_names))
    ax.set_ylabel("answer (centroid)")
    ax.set_title(f"Persona profiles ({title})")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    return out
