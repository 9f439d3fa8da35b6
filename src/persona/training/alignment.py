"""Hungarian alignment of new clusters to existing persona ids, and label stability."""

from __future__ import annotations

from dataclasses import dataclass, replace
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
class MatchedPersona:
    """A current persona kept by a new cluster.

    Attributes:
        persona_id: The persona id kept.
        persona_name: Its display name (a name given by a person wins).
        cluster: The new cluster's index.
        distance: Euclidean distance between the two centroids.
    """

    persona_id: str
    persona_name: str
    cluster: int
    distance: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "persona_id": self.persona_id,
            "persona_name": self.persona_name,
            "cluster": self.cluster,
            "distance": self.distance,
        }


@dataclass(frozen=True)
class CandidatePersona:
    """A provisional persona (``candidate-N``): a new cluster no current persona matched.

    Attributes:
        persona_id: ``candidate-N``.
        persona_name: ``Candidate N`` (or a name given by a person).
        cluster: The new cluster's index.
        nearest_persona: The nearest current persona.
        distance: Distance to it.
        rows: Training rows nearest to it (None: not counted).
        share: Their share of the training rows (None: not counted).
    """

    persona_id: str
    persona_name: str
    cluster: int
    nearest_persona: str
    distance: float
    rows: int | None = None
    share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``rows`` and ``share`` only once counted)."""
        out: dict[str, Any] = {
            "persona_id": self.persona_id,
            "persona_name": self.persona_name,
            "cluster": self.cluster,
            "nearest_persona": self.nearest_persona,
            "distance": self.distance,
        }
        if self.rows is not None:
            out["rows"] = self.rows
        if self.share is not None:
            out["share"] = self.share
        return out


@dataclass(frozen=True)
class RetiredPersona:
    """A current persona no new cluster matched (a retired-candidate).

    Attributes:
        persona_id: The persona id.
        persona_name: Its display name.
        nearest_cluster_distance: Distance to the nearest new cluster.
    """

    persona_id: str
    persona_name: str
    nearest_cluster_distance: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "persona_id": self.persona_id,
            "persona_name": self.persona_name,
            "nearest_cluster_distance": self.nearest_cluster_distance,
        }


@dataclass(frozen=True)
class RadiusGrowth:
    """A kept persona whose calibrated radius went beyond its bound (and was capped).

    Attributes:
        persona_id: The persona id.
        radius: Its current radius.
        calibrated: The radius calibrated on the training rows.
        bound: The allowed radius (what it was capped to).
        median_growth: The growth of its median distance used in the bound.
    """

    persona_id: str
    radius: float
    calibrated: float
    bound: float
    median_growth: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "persona_id": self.persona_id,
            "radius": self.radius,
            "calibrated": self.calibrated,
            "bound": self.bound,
            "median_growth": self.median_growth,
        }


@dataclass(frozen=True)
class Alignment:
    """How new clusters map to existing personas.

    Attributes:
        matched: One entry per kept persona.
        candidates: One entry per provisional persona (flagged for review).
        retired: One entry per persona no cluster matched (retired-candidate).
        radius_grown: One entry per kept persona whose calibrated radius went beyond
            `radius_max_growth` x its radius (capped).
    """

    matched: tuple[MatchedPersona, ...] = ()
    candidates: tuple[CandidatePersona, ...] = ()
    retired: tuple[RetiredPersona, ...] = ()
    radius_grown: tuple[RadiusGrowth, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (lists of entry dicts)."""
        return {
            "matched": [m.to_dict() for m in self.matched],
            "candidates": [c.to_dict() for c in self.candidates],
            "retired": [r.to_dict() for r in self.retired],
            "radius_grown": [g.to_dict() for g in self.radius_grown],
        }


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
    given = names or {}
    ids: list[str | None] = [None] * len(centroids)
    labels: list[str | None] = [None] * len(centroids)
    matched: list[MatchedPersona] = []
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if dist[r, c] <= max_distance:
            pid, name = current.persona_ids[c], current.persona_names[c]
            ids[r], labels[r] = pid, name
            matched.append(MatchedPersona(pid, given.get(pid, name), r, float(dist[r, c])))
    taken = {candidate_number(pid) for pid in current.persona_ids}
    number = 0
    candidates: list[CandidatePersona] = []
    for r in range(len(centroids)):
        if ids[r] is not None:
            continue
        number += 1
        while number in taken:
            number += 1
        pid, name = f"{CANDIDATE_PREFIX}{number}", f"Candidate {number}"
        ids[r], labels[r] = pid, name
        nearest = int(np.argmin(dist[r]))
        candidates.append(
            CandidatePersona(
                pid, given.get(pid, name), r, current.persona_ids[nearest], float(dist[r, nearest])
            )
        )
    kept = {m.persona_id for m in matched}
    retired = tuple(
        RetiredPersona(pid, name, float(dist[:, c].min()))
        for c, (pid, name) in enumerate(
            zip(current.persona_ids, current.persona_names, strict=True)
        )
        if pid not in kept
    )
    out = [given.get(str(i), str(n)) for i, n in zip(ids, labels, strict=True)]
    report = Alignment(tuple(matched), tuple(candidates), retired)
    return [str(i) for i in ids], out, report


def bound_radii(
    draft: PersonaModel,
    radii: np.ndarray,
    current: PersonaModel,
    max_growth: float,
    features: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[RadiusGrowth, ...]]:
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
        features: Training rows (with `reference`, for the median factor).
        reference: The current model's own training rows.

    Returns:
        ``(radii, grown)``: the bounded radii and one entry per capped persona (the
        alignment's ``radius_grown``).
    """
    out = np.array(radii, dtype=np.float64)
    grown: list[RadiusGrowth] = []
    before = dict(zip(current.persona_ids, current.radii.tolist(), strict=True))
    spread = _median_growth(draft, current, features, reference)
    for index, pid in enumerate(draft.persona_ids):
        old = before.get(pid)
        if old is None or not np.isfinite(old):
            continue
        bound = old * max_growth * spread.get(pid, 1.0)
        if out[index] > bound:
            grown.append(RadiusGrowth(pid, old, float(out[index]), bound, spread.get(pid, 1.0)))
            out[index] = bound
    return out, tuple(grown)


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


def cluster_sizes(model: PersonaModel, features: np.ndarray, report: Alignment) -> Alignment:
    """The report with each candidate's training rows (nearest to it) and their share."""
    if not report.candidates or len(features) == 0:
        return report
    nearest = model.predict(features).nearest_id
    counted = []
    for entry in report.candidates:
        rows = int(np.sum(nearest == entry.persona_id))
        counted.append(replace(entry, rows=rows, share=rows / len(features)))
    return replace(report, candidates=tuple(counted))


def label_stability(old: PersonaModel, new: PersonaModel, features: np.ndarray) -> float:
    """Share of rows whose persona id is the same under both models (1.0 on no rows)."""
    if len(features) == 0:
        return 1.0
    same = old.predict(features).persona_id == new.predict(features).persona_id
    return float(np.mean(same))
