"""The vendor persona catalog: id, display name, description and centroid per persona."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from persona.errors import CatalogError
from persona.features import FEATURE_NAMES

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Persona:
    """One marketing persona.

    Attributes:
        id: Stable slug such as ``"sustainable-steve"``; survives retraining.
        name: Display name such as ``"Sustainable Steve"``.
        description: One line for marketing.
        centroid: The persona's point in feature space, one value per feature.
    """

    id: str
    name: str
    description: str
    centroid: tuple[float, ...]


@dataclass(frozen=True)
class Catalog:
    """An ordered set of personas over the same features.

    Attributes:
        personas: The personas, in file order.
        features: Feature names the centroids are expressed in.
        source: Where the catalog came from (free text).
    """

    personas: tuple[Persona, ...]
    features: tuple[str, ...] = FEATURE_NAMES
    source: str = ""

    @property
    def ids(self) -> list[str]:
        """Persona ids in catalog order."""
        return [p.id for p in self.personas]

    @property
    def names(self) -> list[str]:
        """Persona display names in catalog order."""
        return [p.name for p in self.personas]

    def centroids(self) -> np.ndarray:
        """Return the centroids as a float64 array of shape (personas, features)."""
        return np.array([p.centroid for p in self.personas], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON/YAML-ready dict in the file format."""
        return {
            "source": self.source,
            "features": list(self.features),
            "personas": [
                {
                    "id": p.id,
                    "name": p.name,
                    "description": p.description,
                    "centroid": list(p.centroid),
                }
                for p in self.personas
            ],
        }


def parse_catalog(data: Any, origin: str = "<catalog>") -> Catalog:
    """Validate a catalog mapping (as read from YAML) and build a `Catalog`.

    Args:
        data: The parsed YAML document.
        origin: Where it came from, used in error messages.

    Returns:
        The validated catalog.

    Raises:
        CatalogError: Duplicate ids, a bad slug, a centroid of the wrong dimension or with
            a non-finite value, a missing field. The message names the persona and field.
    """
    if not isinstance(data, dict) or not isinstance(data.get("personas"), list):
        raise CatalogError(f"{origin}: expected a mapping with a 'personas' list")
    features = tuple(data.get("features") or FEATURE_NAMES)
    if features != FEATURE_NAMES:
        raise CatalogError(
            f"{origin}: features must be {list(FEATURE_NAMES)}, got {list(features)}"
        )
    if not data["personas"]:
        raise CatalogError(f"{origin}: the catalog has no personas")
    personas = [_parse_persona(item, i, origin) for i, item in enumerate(data["personas"])]
    seen: set[str] = set()
    for i, persona in enumerate(personas):
        if persona.id in seen:
            raise CatalogError(f"{origin}: persona #{i} duplicates id {persona.id!r}")
        seen.add(persona.id)
    return Catalog(tuple(personas), features, str(data.get("source", "")))


def _parse_persona(item: Any, index: int, origin: str) -> Persona:
    where = f"{origin}: persona #{index}"
    if not isinstance(item, dict):
        raise CatalogError(f"{where}: expected a mapping, got {type(item).__name__}")
    for key in ("id", "name", "centroid"):
        if key not in item:
            raise CatalogError(f"{where}: missing field {key!r}")
    pid = str(item["id"])
    where = f"{origin}: persona {pid!r}"
    if not _SLUG.match(pid) or pid == "unassigned":
        raise CatalogError(f"{where}: id must be a lower-case slug (a-z, 0-9, '-')")
    centroid = item["centroid"]
    if not isinstance(centroid, list) or len(centroid) != len(FEATURE_NAMES):
        size = len(centroid) if isinstance(centroid, list) else type(centroid).__name__
        raise CatalogError(f"{where}: centroid must have {len(FEATURE_NAMES)} values, got {size}")
    values = []
    for feature, value in zip(FEATURE_NAMES, centroid, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CatalogError(f"{where}: centroid {feature} is not a number: {value!r}")
        if (isinstance(value, int) and abs(value) > 1e300) or not math.isfinite(value):
            raise CatalogError(f"{where}: centroid {feature} is not finite: {value!r}")
        values.append(float(value))
    return Persona(pid, str(item["name"]), str(item.get("description", "")), tuple(values))


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog YAML file.

    Args:
        path: The file, usually the `PERSONA_CATALOG` setting.

    Returns:
        The validated catalog.

    Raises:
        CatalogError: The file is missing, not YAML, or not a valid catalog.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"persona catalog not found: {path} (set PERSONA_CATALOG)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    return parse_catalog(data, str(path))
