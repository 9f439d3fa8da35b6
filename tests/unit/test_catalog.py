"""catalog: the shipped vendor catalog and precise errors for broken ones."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from persona.catalog import load_catalog, parse_catalog
from persona.errors import CatalogError
from persona.settings import Settings, load_settings

CATALOG = Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml"
STEVE = [
    -2.50919762,
    9.01428613,
    4.63987884,
    1.97316968,
    -6.87962719,
    -6.88010959,
    -8.83832776,
    7.32352292,
    2.02230023,
    4.16145156,
]


def _doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(CATALOG.read_text()))


def test_shipped_catalog_holds_the_three_vendor_personas() -> None:
    catalog = load_catalog(CATALOG)
    assert catalog.ids == ["sustainable-steve", "eco-conscious-haley", "budget-bob"]
    assert catalog.names[:2] == ["Sustainable Steve", "Eco-Conscious Haley"]
    centroids = catalog.centroids()
    assert centroids.shape == (3, 10) and centroids.dtype == np.float64
    assert centroids[0].tolist() == STEVE
    assert all(p.description for p in catalog.personas)


def test_to_dict_round_trips() -> None:
    catalog = load_catalog(CATALOG)
    assert parse_catalog(catalog.to_dict()) == catalog


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["personas"][1].update(id="sustainable-steve"),
            "duplicates id 'sustainable-steve'",
        ),
        (
            lambda d: d["personas"][0]["centroid"].pop(),
            "persona 'sustainable-steve': centroid must have 10 values, got 9",
        ),
        (
            lambda d: d["personas"][2]["centroid"].append(1.0),
            "centroid must have 10 values, got 11",
        ),
        (
            lambda d: d["personas"][1]["centroid"].__setitem__(3, math.nan),
            "'eco-conscious-haley': centroid x4 is not finite",
        ),
        (
            lambda d: d["personas"][1]["centroid"].__setitem__(0, math.inf),
            "centroid x1 is not finite",
        ),
        (
            lambda d: d["personas"][0]["centroid"].__setitem__(9, "ten"),
            "centroid x10 is not a number: 'ten'",
        ),
        (lambda d: d["personas"][0].pop("name"), "persona #0: missing field 'name'"),
        (lambda d: d["personas"][0].update(id="Not A Slug"), "id must be a lower-case slug"),
        (lambda d: d["personas"][0].update(id="unassigned"), "id must be a lower-case slug"),
        (lambda d: d.update(personas=[]), "no personas"),
        (lambda d: d.update(features=["a", "b"]), "features must be"),
        (lambda d: d.pop("personas"), "expected a mapping with a 'personas' list"),
    ],
)
def test_broken_catalogs_are_rejected_precisely(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], Any], message: str
) -> None:
    doc = _doc()
    mutate(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"not found.*PERSONA_CATALOG"):
        load_catalog(tmp_path / "nope.yaml")


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("personas: [\n  - id: x\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(path)


def test_persona_catalog_setting_points_at_a_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    doc = {
        "personas": [
            {"id": "alpha", "name": "Alpha", "centroid": [0.0] * 10},
            {"id": "beta", "name": "Beta", "description": "b", "centroid": list(range(10))},
        ]
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("PERSONA_CATALOG", str(path))
    cfg = load_settings(_env_file=None)
    catalog = load_catalog(cfg.persona_catalog)
    assert catalog.ids == ["alpha", "beta"]
    assert catalog.centroids()[1].tolist() == [float(i) for i in range(10)]
    assert catalog.personas[0].description == ""
