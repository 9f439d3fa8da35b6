"""`PersonaModel`: nearest persona centroid, with distance, margin and `unassigned`.

The per-row path is plain numpy on a float64 array (no pandas), so one record and a
million records cost the same code. Version 1 of the model is the vendor catalog itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from persona.catalog import Catalog
from persona.errors import ModelError
from persona.features import FEATURE_NAMES

UNASSIGNED_ID = "unassigned"
UNASSIGNED_NAME = "Unassigned"
_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Prediction:
    """Labels of a batch of rows, one array entry per row.

    Attributes:
        persona_id: Assigned persona id, or ``"unassigned"`` beyond the nearest radius.
        persona_name: Display name of the assigned persona (``"Unassigned"`` likewise).
        nearest_id: Id of the nearest persona, assigned or not.
        distance: Euclidean distance to the nearest centroid.
        margin: Second-nearest distance minus nearest (inf with a single persona).
        assigned: False where the row is farther than the nearest persona's radius.
        nearest_index: Index of the nearest persona in the model's order.
    """

    persona_id: np.ndarray
    persona_name: np.ndarray
    nearest_id: np.ndarray
    distance: np.ndarray
    margin: np.ndarray
    assigned: np.ndarray
    nearest_index: np.ndarray

    def __len__(self) -> int:
        return len(self.distance)

    def records(self) -> list[dict[str, Any]]:
        """Return one JSON-ready dict per row (the REST response form)."""
        return [
            {
                "persona_id": pid,
                "persona_name": name,
                "distance": dist,
                "margin": marg,
            }
            for pid, name, dist, marg in zip(
                self.persona_id.tolist(),
                self.persona_name.tolist(),
                self.distance.tolist(),
                self.margin.tolist(),
                strict=True,
            )
        ]


@dataclass(frozen=True)
class PersonaModel:
    """Nearest-centroid persona model.

    Attributes:
        persona_ids: Stable persona slugs, one per centroid.
        persona_names: Display names, one per centroid.
        centroids: Array of shape (personas, features).
        radii: Per-persona assignment radius; ``inf`` means always assign.
        feature_names: The feature order the centroids use.
        training: Free-form description of the data the model came from.
    """

    persona_ids: tuple[str, ...]
    persona_names: tuple[str, ...]
    centroids: np.ndarray
    radii: np.ndarray
    feature_names: tuple[str, ...] = FEATURE_NAMES
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        centroids = np.ascontiguousarray(self.centroids, dtype=np.float64)
        radii = np.asarray(self.radii, dtype=np.float64)
        k = len(self.persona_ids)
        if k == 0 or centroids.shape != (k, len(self.feature_names)):
            raise ModelError(
                f"centroids shape {centroids.shape} does not match "
                f"{k} personas x {len(self.feature_names)} features"
            )
        if len(self.persona_names) != k or radii.shape != (k,):
            raise ModelError("persona names and radii must have one entry per persona")
        if len(set(self.persona_ids)) != k:
            raise ModelError(f"duplicate persona ids: {list(self.persona_ids)}")
        if not np.isfinite(centroids).all() or np.isnan(radii).any() or (radii <= 0).any():
            raise ModelError("centroids must be finite and radii positive")
        object.__setattr__(self, "centroids", centroids)
        object.__setattr__(self, "radii", radii)
        object.__setattr__(self, "_ids", np.array((*self.persona_ids, UNASSIGNED_ID)))
        object.__setattr__(self, "_names", np.array((*self.persona_names, UNASSIGNED_NAME)))
        object.__setattr__(self, "_sq_norms", np.einsum("ij,ij->i", centroids, centroids))

    @property
    def k(self) -> int:
        """Number of personas."""
        return len(self.persona_ids)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Return Euclidean distances of shape (rows, personas).

        Args:
            features: Validated float64 array of shape (rows, features).
        """
        x = np.asarray(features, dtype=np.float64)
        sq = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ self.centroids.T)
        sq += self._sq_norms[None, :]  # type: ignore[attr-defined]
        np.maximum(sq, 0.0, out=sq)
        return np.sqrt(sq, out=sq)

    def predict(self, features: np.ndarray) -> Prediction:
        """Label rows with their nearest persona.

        Args:
            features: Validated float64 array of shape (rows, features) in model order.

        Returns:
            The labels, distances and margins of every row.
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ModelError(f"expected (rows, {len(self.feature_names)}) features, got {x.shape}")
        n = x.shape[0]
        nearest = np.empty(n, dtype=np.int64)
        distance = np.empty(n)
        margin = np.empty(n)
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n)
            self._predict_chunk(
                x[start:stop], nearest[start:stop], distance[start:stop], margin[start:stop]
            )
        assigned = distance <= self.radii[nearest]
        label = np.where(assigned, nearest, self.k)
        return Prediction(
            persona_id=self._ids[label],  # type: ignore[attr-defined]
            persona_name=self._names[label],  # type: ignore[attr-defined]
            nearest_id=self._ids[nearest],  # type: ignore[attr-defined]
            distance=distance,
            margin=margin,
            assigned=assigned,
            nearest_index=nearest,
        )

    def _predict_chunk(
        self, x: np.ndarray, nearest: np.ndarray, distance: np.ndarray, margin: np.ndarray
    ) -> None:
        dist = self.distances(x)
        rows = np.arange(len(x))
        nearest[:] = np.argmin(dist, axis=1)
        distance[:] = dist[rows, nearest]
        if self.k == 1:
            margin[:] = np.inf
            return
        dist[rows, nearest] = np.inf
        margin[:] = dist.min(axis=1) - distance

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description (personas, radii, features, training data)."""
        return {
            "personas": [
                {"id": pid, "name": name, "centroid": c.tolist(), "radius": _finite_or_none(r)}
                for pid, name, c, r in zip(
                    self.persona_ids, self.persona_names, self.centroids, self.radii, strict=True
                )
            ],
            "features": list(self.feature_names),
            "training": self.training,
        }


def with_names(model: PersonaModel, names: dict[str, str]) -> PersonaModel:
    """The model with display names given by a person (by persona id) instead of its own.

    Args:
        model: The model.
        names: Persona id -> name; ids the model does not have are ignored.

    Returns:
        The same model when nothing changes, else a renamed copy.
    """
    renamed = tuple(
        names.get(p, n) for p, n in zip(model.persona_ids, model.persona_names, strict=True)
    )
    if renamed == model.persona_names:
        return model
    return replace(model, persona_names=renamed)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def from_catalog(catalog: Catalog, radii: np.ndarray | None = None) -> PersonaModel:
    """Build model version 1: the vendor catalog's centroids, no fitting.

    Args:
        catalog: The persona catalog.
        radii: Optional per-persona radii (e.g. calibrated on a reference month); without
            them every row is assigned.

    Returns:
        The catalog model.
    """
    k = len(catalog.personas)
    return PersonaModel(
        persona_ids=tuple(catalog.ids),
        persona_names=tuple(catalog.names),
        centroids=catalog.centroids(),
        radii=np.full(k, np.inf) if radii is None else np.asarray(radii, dtype=np.float64),
        feature_names=tuple(catalog.features),
        training={"kind": "catalog", "source": catalog.source},
    )


def calibrate_radii(
    model: PersonaModel, features: np.ndarray, quantile: float, scale: float
) -> np.ndarray:
    """Calibrate per-persona radii: `scale` x the `quantile` of in-persona distances.

    A persona with fewer than 10 rows gets the largest radius of the others (or inf when
    none has enough rows), so a small persona is not declared empty by accident.

    Args:
        model: The model whose centroids are used.
        features: Training rows, shape (rows, features).
        quantile: Quantile of in-persona distances, e.g. 0.999.
        scale: Multiplier (>= 1) that leaves head-room above the quantile.

    Returns:
        Radii of shape (personas,).
    """
    unbounded = PersonaModel(
        model.persona_ids, model.persona_names, model.centroids, np.full(model.k, np.inf)
    )
    pred = unbounded.predict(features)
    radii = np.full(model.k, np.nan)
    for index in range(model.k):
        members = pred.distance[pred.nearest_index == index]
        if len(members) >= 10:
            radii[index] = float(np.quantile(members, quantile)) * scale
    fallback = np.nanmax(radii) if np.isfinite(radii).any() else np.inf
    return np.where(np.isnan(radii), fallback, radii)


MODEL_FORMAT = "persona-model/1"
MODEL_JSON = "persona_model.json"


def model_to_dict(model: PersonaModel) -> dict[str, Any]:
    """Return the JSON form of a model (the artifact every deployment reads).

    Args:
        model: The model.

    Returns:
        A JSON-ready dict; infinite radii are written as null.
    """
    return {
        "format": MODEL_FORMAT,
        "persona_ids": list(model.persona_ids),
        "persona_names": list(model.persona_names),
        "centroids": model.centroids.tolist(),
        "radii": [_finite_or_none(r) for r in model.radii],
        "feature_names": list(model.feature_names),
        "training": model.training,
    }


def model_from_dict(data: dict[str, Any]) -> PersonaModel:
    """Build a model from its JSON form.

    Args:
        data: What `model_to_dict` returned (possibly after a JSON round trip).

    Returns:
        The model.

    Raises:
        ModelError: The document is not a persona model of a known format.
    """
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise ModelError(f"not a {MODEL_FORMAT} document")
    try:
        return PersonaModel(
            persona_ids=tuple(data["persona_ids"]),
            persona_names=tuple(data["persona_names"]),
            centroids=np.asarray(data["centroids"], dtype=np.float64),
            radii=np.array([np.inf if r is None else r for r in data["radii"]], dtype=np.float64),
            feature_names=tuple(data["feature_names"]),
            training=dict(data.get("training") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"malformed persona model document: {exc}") from None


@dataclass(frozen=True)
class LoadedModel:
    """A persona model with where it came from (the registry, a local folder, a cache).

    Attributes:
        model: The model.
        name: Registered model name ("local" for a folder).
        version: Version number as a string ("local" for a folder).
        alias: The alias it was loaded by, if any.
        uri: The URI or path it was loaded from.
        tags: The version's tags.
    """

    model: PersonaModel
    name: str
    version: str
    alias: str | None
    uri: str
    tags: dict[str, str] = field(default_factory=dict)


def read_model_folder(path: str | Path) -> PersonaModel:
    """Read a model document: the JSON file, a folder holding it, or a pyfunc model folder.

    Looks at `path` itself, then ``path/persona_model.json``, then
    ``path/artifacts/persona_model.json`` (an MLflow pyfunc folder). No MLflow import.

    Args:
        path: The file or folder.

    Returns:
        The model.

    Raises:
        ModelError: No model document was found, or it is unreadable or malformed.
    """
    root = Path(path)
    candidates = [root, root / MODEL_JSON, root / "artifacts" / MODEL_JSON]
    for candidate in candidates:
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot read model document {candidate}: {exc}") from None
            return model_from_dict(data)
    raise ModelError(f"no {MODEL_JSON} under {root} (looked in {', '.join(map(str, candidates))})")
