"""K-Means retraining that keeps persona ids and names stable.

`train` is a pure function: feature rows + the current `PersonaModel` + `TrainingSettings` in,
a `TrainingResult` out (new model, chosen k, sweep table, alignment report). Same inputs and
seed, same result.

Steps:
1. Sweep k in [k_min, k_max]. For k equal to the current model's k, K-Means starts from the
   current centroids (one run); any other k uses k-means++ with `kmeans_n_init` seeded restarts.
2. Score every k: silhouette (on a seeded sample above `silhouette_sample_rows`),
   Calinski-Harabasz, Davies-Bouldin (lower is better) and the original study's
   ``silhouette_inertia_ratio`` = silhouette x 1000 / inertia.
3. Select k on `selection_metric`. Every k whose score is within `k_selection_tolerance`
   (relative to the best score's magnitude) of the best counts as tied. The current
   model's k wins a tie (personas are client-defined: changing their number needs clear
   evidence); otherwise the best-scoring k wins (the smallest k on an exact tie).
4. Discovery (`training.discovery`): a cluster that holds two separate groups is split
   (second-mode test), so a new segment becomes a cluster of its own instead of stretching
   the persona that absorbed it.
5. Align the new clusters to the current personas with the Hungarian algorithm on centroid
   distance. A pair farther apart than `align_max_distance` is not a match, and a cluster
   left without a persona becomes a provisional persona ``candidate-N`` (the persona
   without a cluster a retired-candidate). Names a person gave (`names`) win.
6. Calibrate radii on the training rows (`model.calibrate_radii`); a kept persona's radius
   may grow at most `radius_max_growth` x its current radius x the growth of its median
   distance in the newest month (so a persona that spread as a whole widens with it, a
   grown tail does not).
   A capped radius is reported in ``alignment.radius_grown`` (the challenger needs review).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from persona.errors import ModelError
from persona.model import PersonaModel, calibrate_radii
from persona.settings import TrainingSettings
from persona.training.alignment import (
    CANDIDATE_PREFIX,
    Alignment,
    CandidatePersona,
    MatchedPersona,
    RadiusGrowth,
    RetiredPersona,
    align,
    bound_radii,
    cluster_sizes,
    label_stability,
    persona_order,
)
from persona.training.discovery import discover
from persona.training.sweep import (
    LOWER_IS_BETTER,
    METRICS,
    KFit,
    check_training_data,
    fit_k,
    score_labels,
    select_k,
)

__all__ = [
    "CANDIDATE_PREFIX",
    "LOWER_IS_BETTER",
    "METRICS",
    "Alignment",
    "CandidatePersona",
    "KFit",
    "MatchedPersona",
    "RadiusGrowth",
    "RetiredPersona",
    "TrainingResult",
    "align",
    "check_training_data",
    "fit_k",
    "label_stability",
    "score_labels",
    "select_k",
    "train",
]


@dataclass(frozen=True)
class TrainingResult:
    """Outcome of `train`.

    Attributes:
        model: The new model with aligned ids and calibrated radii.
        k: The chosen number of personas.
        sweep: One fit per k: metrics, inertia, iterations, ``warm_start``, ``selected``.
        alignment: The alignment report.
        selection_metric: Metric that chose k.
        score: Its value at the chosen k.
    """

    model: PersonaModel
    k: int
    sweep: tuple[KFit, ...]
    alignment: Alignment
    selection_metric: str
    score: float

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary (no arrays)."""
        return {
            "k": self.k,
            "selection_metric": self.selection_metric,
            "score": self.score,
            "personas": list(self.model.persona_ids),
            "sweep": [fit.to_dict() for fit in self.sweep],
            "alignment": self.alignment.to_dict(),
        }


def train(
    features: np.ndarray,
    current: PersonaModel,
    params: TrainingSettings,
    training: dict[str, Any] | None = None,
    names: dict[str, str] | None = None,
    reference: np.ndarray | None = None,
    recent: np.ndarray | None = None,
) -> TrainingResult:
    """Retrain: k sweep, selection, alignment to persona ids, radius calibration.

    Args:
        features: Training rows, shape (rows, 10), e.g. the last N months.
        current: The current (champion) model: warm start and persona ids.
        params: The training settings (sweep, selection, alignment, discovery, radii).
        training: Description of the data (months, data hash...) stored in the model.
        names: Display names a person gave to persona ids (e.g. a named candidate).
        reference: The current model's own training rows (bounds radius growth by what
            the bulk spread explains; see `alignment.bound_radii`).
        recent: The rows whose spread is compared with `reference` (default: all
            training rows; the registry passes the newest month).

    Returns:
        The result; `result.model` has matched personas first (current order), then
        candidates.

    Raises:
        ModelError: Empty data, NaN/inf values, fewer rows than k_min, a bad k range.
    """
    if params.k_min < 1 or params.k_max < params.k_min:
        raise ModelError(f"bad k range [{params.k_min}, {params.k_max}]")
    x = check_training_data(features, params.k_min)
    ks = [k for k in range(params.k_min, params.k_max + 1) if k < len(x)]
    if not ks:
        raise ModelError(f"training data has {len(x)} rows, too few for k >= {params.k_min}")
    fits = [fit_k(x, k, current, params) for k in ks]
    k = select_k(fits, params.selection_metric, params.k_selection_tolerance, current.k)
    sweep = tuple(replace(fit, selected=fit.k == k) for fit in fits)
    chosen = next(fit for fit in sweep if fit.selected)
    found, splits = discover(x, chosen.centroids, params)
    k = len(found)
    ids, labels, report = align(found, current, params.align_max_distance, names)
    order = persona_order(ids, current)
    centroids = found[order]
    info = {
        "kind": "kmeans",
        "rows": len(x),
        "k": k,
        "seed": params.random_seed,
        "selection_metric": params.selection_metric,
        "splits": [{"separation": sp.separation, "sizes": list(sp.sizes)} for sp in splits],
        **(training or {}),
    }
    draft = PersonaModel(
        tuple(ids[i] for i in order),
        tuple(labels[i] for i in order),
        centroids,
        np.full(k, np.inf),
        training=info,
    )
    radii = calibrate_radii(draft, x, params.radius_quantile, params.radius_scale)
    recent = x if recent is None else recent
    radii, grown = bound_radii(draft, radii, current, params.radius_max_growth, recent, reference)
    model = PersonaModel(draft.persona_ids, draft.persona_names, centroids, radii, training=info)
    report = cluster_sizes(model, x, replace(report, radius_grown=grown))
    return TrainingResult(
        model, k, sweep, report, params.selection_metric, chosen.score(params.selection_metric)
    )
