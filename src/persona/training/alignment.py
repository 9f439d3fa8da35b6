"""Hungarian alignment of new clusters to existing persona ids, and label stability."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from persona.model import PersonaModel

CANDIDATE_PREFIX = "candidate-"


@dataclass(frozen=True)
class Alignment:
    """How new clusters map to existing personas.

    Attributes:
        matched: ``{persona_id, persona_name, cluster, distance}`` per kept persona.
        candidates: ``{persona_id, persona_name, cluster, nearest_persona, distance}`` per
            provisional persona (flagged for review).
        retired: ``{persona_id, persona_name, nearest_cluster_distance}`` per persona no
            cluster matched (retired-candidate).
    """

    matched: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    retired: list[dict[str, Any]] = field(default_factory=list)


def align(
    centroids: np.ndarray, current: PersonaModel, max_distance: float
) -> tuple[list[str], list[str], Alignment]:
    """Match new clusters to current personas (Hungarian on Euclidean centroid distance).

    Args:
        centroids: New cluster centroids, shape (k, 10).
        current: The model whose persona ids/names are kept.
        max_distance: Pairs farther apart are not matched.

    Returns:
        ``(ids, names, alignment)``: one id and name per new cluster, in cluster order.
    """
    dist = np.linalg.norm(centroids[:, None, :] - current.centroids[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(dist)
    ids: list[str | None] = [None] * len(centroids)
    names: list[str | None] = [None] * len(centroids)
    report = Alignment()
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if dist[r, c] <= max_distance:
            ids[r], names[r] = current.persona_ids[c], current.persona_names[c]
            report.matched.append(
                {
                    "persona_id": ids[r],
                    "persona_name": names[r],
                    "cluster": r,
                    "distance": float(dist[r, c]),
                }
            )
    taken = {
        int(s[len(CANDIDATE_PREFIX) :])
        for s in current.persona_ids
        if s.startswith(CANDIDATE_PREFIX) and s[len(CANDIDATE_PREFIX) :].isdigit()
    }
    number = 0
    for r in range(len(centroids)):
        if ids[r] is not None:
            continue
        number += 1
        while number in taken:
            number += 1
        ids[r], names[r] = f"{CANDIDATE_PREFIX}{number}", f"Candidate {number}"
        nearest = int(np.argmin(dist[r]))
        report.candidates.append(
            {
                "persona_id": ids[r],
                "persona_name": names[r],
                "cluster": r,
                "nearest_persona": current.persona_ids[nearest],
                "distance": float(dist[r, nearest]),
            }
        )
    kept = {m["persona_id"] for m in report.matched}
    for c, (pid, name) in enumerate(zip(current.persona_ids, current.persona_names, strict=True)):
        if pid not in kept:
            report.retired.append(
                {
                    "persona_id": pid,
                    "persona_name": name,
                    "nearest_cluster_distance": float(dist[:, c].min()),
                }
            )
    return [str(i) for i in ids], [str(n) for n in names], report


def label_stability(old: PersonaModel, new: PersonaModel, features: np.ndarray) -> float:
    """Share of rows whose persona id is the same under both models (1.0 on no rows)."""
    if len(features) == 0:
        return 1.0
    same = old.predict(features).persona_id == new.predict(features).persona_id
    return float(np.mean(same))
