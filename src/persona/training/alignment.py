"""Hungarian alignment of new clusters to existing persona ids, and label stability."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from persona.model import PersonaModel

CANDIDATE_PREFIX = "candidate-"


def candidate_number(persona_id: str) -> int | None:
    """N of a provisional persona id ``candidate-N``; None for any other id."""
    number = persona_id[len(CANDIDATE_PREFIX) :]
    if persona_id.startswith(CANDIDATE_PREFIX) and number.isdigit():
        return int(number)
    return None


def persona_order(ids: list[str], current: PersonaModel) -> list[int]:
    """Cluster indices ordered: `current`'s personas in its order, then candidates by N."""
    rank = {pid: i for i, pid in enumerate(current.persona_ids)}

    def key(i: int) -> tuple[int, int]:
        pid = ids[i]
        if pid in rank:
            return (0, rank[pid])
        return (1, candidate_number(pid) or 0)

    return sorted(range(len(ids)), key=key)


@dataclass(frozen=True)
class Alignment:
    """How new clusters map to existing personas.

    Attributes:
        matched: ``{persona_id, persona_name, cluster, distance}`` per kept persona.
        candidates: ``{persona_id, persona_name, cluster, nearest_persona, distance}`` per
            provisional persona (flagged for review).
        retired: ``{persona_id, persona_name, nearest_cluster_distance}`` per persona no
            cluster matched (retired-candidate).
        radius_grown: ``{persona_id, radius, calibrated, bound}`` per kept persona whose
            calibrated radius went beyond `radius_max_growth` x its radius (capped).
    """

    matched: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    retired: list[dict[str, Any]] = field(default_factory=list)
    radius_grown: list[dict[str, Any]] = field(default_factory=list)


def align(
    centroids: np.ndarray,
    current: PersonaModel,
    max_distance: float,
    names: dict[str, str] | None = None,
) -> tuple[list[str], list[str], Alignment]:
    """Match new clusters to current personas (Hungarian on Euclidean centroid distance).

    Args:
        centroids: New cluster centroids, shape (k, 10).
        current: The model whose persona ids/names are kept.
        max_distance: Pairs farther apart are not matched.
        names: Display names given by a person, by persona id; they win over the model's.

    Returns:
        ``(ids, names, alignment)``: one id and name per new cluster, in cluster order.
    """
    dist = np.linalg.norm(centroids[:, None, :] - current.centroids[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(dist)
    ids: list[str | None] = [None] * len(centroids)
    labels: list[str | None] = [None] * len(centroids)
    report = Alignment()
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if dist[r, c] <= max_distance:
            ids[r], labels[r] = current.persona_ids[c], current.persona_names[c]
            report.matched.append(
                {
                    "persona_id": ids[r],
                    "persona_name": labels[r],
                    "cluster": r,
                    "distance": float(dist[r, c]),
                }
            )
    taken = {candidate_number(pid) for pid in current.persona_ids}
    number = 0
    for r in range(len(centroids)):
        if ids[r] is not None:
            continue
        number += 1
        while number in taken:
            number += 1
        ids[r], labels[r] = f"{CANDIDATE_PREFIX}{number}", f"Candidate {number}"
        nearest = int(np.argmin(dist[r]))
        report.candidates.append(
            {
                "persona_id": ids[r],
                "persona_name": labels[r],
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
    given = names or {}
    out = [given.get(str(i), str(n)) for i, n in zip(ids, labels, strict=True)]
    for entry in report.matched + report.candidates:
        entry["persona_name"] = given.get(entry["persona_id"], entry["persona_name"])
    return [str(i) for i in ids], out, report


def bound_radii(
    draft: PersonaModel,
    radii: np.ndarray,
    current: PersonaModel,
    max_growth: float,
    report: Alignment,
    features: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Cap each kept persona's radius growth beyond what its bulk spread explains.

    A persona's allowed radius is ``max_growth`` x its current radius x the growth of its
    median distance (training rows vs the current model's reference rows, at least 1):
    a persona that spread as a whole may widen with it, one that only grew a tail (rows it
    did not explain before, e.g. an absorbed segment) may not. Without reference rows the
    median factor is 1.

    Args:
        draft: The new model (ids in its order).
        radii: Calibrated radii of the draft.
        current: The current model (its radii are the reference).
        max_growth: Largest allowed tail growth.
        report: Alignment report; capped personas are appended to ``radius_grown``.
        features: Training rows (with `reference`, for the median factor).
        reference: The current model's own training rows.

    Returns:
        The bounded radii.
    """
    out = np.array(radii, dtype=np.float64)
    before = dict(zip(current.persona_ids, current.radii.tolist(), strict=True))
    spread = _median_growth(draft, current, features, reference)
    for index, pid in enumerate(draft.persona_ids):
        old = before.get(pid)
        if old is None or not np.isfinite(old):
            continue
        bound = old * max_growth * spread.get(pid, 1.0)
        if out[index] > bound:
            report.radius_grown.append(
                {"persona_id": pid, "radius": old, "calibrated": float(out[index]),
                 "bound": bound, "median_growth": spread.get(pid, 1.0)}
            )  # fmt: skip
            out[index] = bound
    return out


def _median_growth(
    draft: PersonaModel,
    current: PersonaModel,
    features: np.ndarray | None,
    reference: np.ndarray | None,
) -> dict[str, float]:
    """Per kept persona: median distance now / median distance under the current model."""
    if features is None or reference is None or len(features) == 0 or len(reference) == 0:
        return {}
    new, old = draft.predict(features), current.predict(reference)
    out = {}
    for pid in set(draft.persona_ids) & set(current.persona_ids):
        a = new.distance[new.nearest_id == pid]
        b = old.distance[old.nearest_id == pid]
        if len(a) >= 10 and len(b) >= 10 and np.median(b) > 0:
            out[pid] = max(1.0, float(np.median(a) / np.median(b)))
    return out


def cluster_sizes(model: PersonaModel, features: np.ndarray, report: Alignment) -> None:
    """Record in each candidate entry how many training rows are nearest to it."""
    if not report.candidates or len(features) == 0:
        return
    nearest = model.predict(features).nearest_id
    for entry in report.candidates:
        entry["rows"] = int(np.sum(nearest == entry["persona_id"]))
        entry["share"] = entry["rows"] / len(features)


def label_stability(old: PersonaModel, new: PersonaModel, features: np.ndarray) -> float:
    """Share of rows whose persona id is the same under both models (1.0 on no rows)."""
    if len(features) == 0:
        return 1.0
    same = old.predict(features).persona_id == new.predict(features).persona_id
    return float(np.mean(same))
