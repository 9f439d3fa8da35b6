"""Who a candidate persona is, in numbers a person can read (pure; no I/O).

A candidate (``candidate-N``) is described by this month's rows nearest to it, the persona
it is nearest to, and the answers (features) where their centroids differ most. Two fits
are the same segment when they have the same personas and each candidate's centroid moved
less than half its distance to the nearest persona.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from persona.model import PersonaModel

TOP_ANSWERS = 3


def _nearest_other(model: PersonaModel, index: int, skip: set[str]) -> tuple[int, float]:
    """The persona nearest to persona `index` among those not in `skip`."""
    dist = np.linalg.norm(model.centroids - model.centroids[index], axis=1)
    for i, pid in enumerate(model.persona_ids):
        if pid in skip or i == index:
            dist[i] = np.inf
    nearest = int(np.argmin(dist))
    return nearest, float(dist[nearest])


def candidate_facts(
    model: PersonaModel, month_x: np.ndarray, candidates: Sequence[str], top: int = TOP_ANSWERS
) -> list[dict[str, Any]]:
    """The facts of each candidate persona on one month's rows.

    Args:
        model: The challenger holding the candidates.
        month_x: The month's feature rows, shape (n, 10).
        candidates: Candidate persona ids of `model`.
        top: How many answers to report (largest centroid difference first).

    Returns:
        One dict per candidate: ``persona_id``, ``persona_name``, ``rows`` and ``share`` of
        the month labelled with it, ``nearest_persona`` (an established persona when there
        is one), ``distance``, ``answers`` (feature, candidate value, nearest value) and
        ``centroid`` (rounded, to compare fits).
    """
    labels = model.predict(month_x).persona_id if len(month_x) else np.array([])
    total = max(len(month_x), 1)
    out = []
    for pid in candidates:
        index = model.persona_ids.index(pid)
        nearest, distance = _nearest_other(model, index, set(candidates))
        centre, other = model.centroids[index], model.centroids[nearest]
        order = np.argsort(-np.abs(centre - other))[:top]
        rows = int(np.sum(labels == pid))
        out.append(
            {
                "persona_id": pid,
                "persona_name": model.persona_names[index],
                "rows": rows,
                "share": round(rows / total, 4),
                "nearest_persona": model.persona_ids[nearest],
                "distance": round(distance, 2),
                "answers": [
                    {
                        "feature": model.feature_names[i],
                        "candidate": round(float(centre[i]), 1),
                        "nearest": round(float(other[i]), 1),
                    }
                    for i in order.tolist()
                ],
                "centroid": [round(float(v), 3) for v in centre],
            }
        )
    return out


def same_fit(
    personas: Sequence[str],
    facts: Sequence[Mapping[str, Any]],
    old_personas: Sequence[str],
    old_facts: Sequence[Mapping[str, Any]],
) -> bool:
    """Whether a new fit describes the same segments as an earlier one (no real change).

    Args:
        personas: Persona ids of the new fit.
        facts: `candidate_facts` of the new fit.
        old_personas: Persona ids of the earlier fit.
        old_facts: `candidate_facts` stored with the earlier fit.

    Returns:
        True when the persona ids match and every candidate's centroid lies within half
        its distance to the nearest persona of the earlier one.
    """
    if list(personas) != list(old_personas) or len(facts) != len(old_facts):
        return False
    old = {f["persona_id"]: f for f in old_facts}
    for fact in facts:
        before = old.get(fact["persona_id"])
        if before is None or "centroid" not in before:
            return False
        moved = np.linalg.norm(np.subtract(fact["centroid"], before["centroid"]))
        if moved > 0.5 * float(before["distance"]):
            return False
    return True
