"""PersonaModel: nearest centroid, unassigned rule, JSON round trip, accuracy on synth data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from persona.catalog import load_catalog
from persona.errors import ModelError
from persona.features import FEATURE_NAMES
from persona.model import (
    UNASSIGNED_ID,
    PersonaModel,
    calibrate_radii,
    from_catalog,
    model_from_dict,
    model_to_dict,
)
from persona.synth import generate_month
from tests.conftest import CATALOG


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog(CATALOG)


def _features(frame):  # type: ignore[no-untyped-def]
    return frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)


def _random_model(rng: np.random.Generator, k: int) -> PersonaModel:
    return PersonaModel(
        tuple(f"p-{i}" for i in range(k)),
        tuple(f"P {i}" for i in range(k)),
        rng.normal(0, 5, size=(k, 10)),
        np.full(k, np.inf),
    )


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_predict_equals_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    model = _random_model(rng, k)
    x = rng.normal(0, 6, size=(3000, 10))
    pred = model.predict(x)
    brute = np.array([[np.sqrt(((row - c) ** 2).sum()) for c in model.centroids] for row in x])
    nearest = brute.argmin(axis=1)
    assert (pred.nearest_index == nearest).all()
    np.testing.assert_allclose(pred.distance, brute.min(axis=1), rtol=1e-9, atol=1e-9)
    if k > 1:
        second = np.sort(brute, axis=1)[:, 1]
        np.testing.assert_allclose(pred.margin, second - brute.min(axis=1), atol=1e-9)
    else:
        assert np.isinf(pred.margin).all()
    assert list(pred.persona_id) == [model.persona_ids[i] for i in nearest]


def test_exact_tie_takes_first_persona_with_zero_margin() -> None:
    model = PersonaModel(
        ("a", "b"), ("A", "B"), np.array([[1.0] + [0] * 9, [-1.0] + [0] * 9]), np.full(2, np.inf)
    )
    pred = model.predict(np.zeros((2, 10)))
    assert list(pred.persona_id) == ["a", "a"]
    np.testing.assert_allclose(pred.margin, 0.0, atol=1e-12)


def test_stable_month_ground_truth_accuracy(catalog) -> None:  # type: ignore[no-untyped-def]
    survey, _ = generate_month(catalog, "2025-01", 2000, "stable", seed=11)
    x = _features(survey)
    model = from_catalog(catalog, None)
    model = from_catalog(catalog, calibrate_radii(model, x, 0.999, 1.25))
    other, other_truth = generate_month(catalog, "2025-02", 2000, "stable", seed=11)
    pred = model.predict(_features(other))
    assert np.mean(pred.persona_id == other_truth["persona_id"].to_numpy()) >= 0.99


def test_unassigned_beyond_radius() -> None:
    model = PersonaModel(
        ("a", "b"), ("A", "B"), np.array([[0.0] * 10, [10.0] * 10]), np.array([1.0, 2.0])
    )
    x = np.array([[0.5] + [0] * 9, [3.0] + [0] * 9, [10.0] * 9 + [11.5], [50.0] * 10])
    pred = model.predict(x)
    assert list(pred.persona_id) == ["a", UNASSIGNED_ID, "b", UNASSIGNED_ID]
    assert list(pred.persona_name) == ["A", "Unassigned", "B", "Unassigned"]
    assert list(pred.nearest_id) == ["a", "a", "b", "b"]
    assert list(pred.assigned) == [True, False, True, False]


def test_new_segment_rows_are_unassigned(catalog) -> None:  # type: ignore[no-untyped-def]
    stable, _ = generate_month(catalog, "2025-01", 1500, "stable", seed=3)
    draft = from_catalog(catalog)
    model = from_catalog(catalog, calibrate_radii(draft, _features(stable), 0.999, 1.25))
    survey, truth = generate_month(catalog, "2025-02", 1500, "new_segment", seed=3, new_distance=20)
    pred = model.predict(_features(survey))
    new = truth["persona_id"].to_numpy() == "new-segment"
    assert np.mean(pred.persona_id[new] == UNASSIGNED_ID) >= 0.99
    assert np.mean(pred.persona_id[~new] == UNASSIGNED_ID) <= 0.01


def test_json_round_trip(catalog) -> None:  # type: ignore[no-untyped-def]
    model = from_catalog(catalog, np.array([5.0, np.inf, 7.5]))
    text = json.dumps(model_to_dict(model))
    back = model_from_dict(json.loads(text))
    assert back.persona_ids == model.persona_ids and back.persona_names == model.persona_names
    np.testing.assert_array_equal(back.centroids, model.centroids)
    np.testing.assert_array_equal(back.radii, model.radii)
    x = np.random.default_rng(0).normal(0, 8, size=(500, 10))
    a, b = model.predict(x), back.predict(x)
    assert (a.persona_id == b.persona_id).all()
    np.testing.assert_array_equal(a.distance, b.distance)


def test_bad_documents_and_shapes(catalog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError, match="persona-model/1"):
        model_from_dict({"format": "other"})
    data = model_to_dict(from_catalog(catalog))
    del data["centroids"]
    with pytest.raises(ModelError, match="malformed"):
        model_from_dict(data)
    with pytest.raises(ModelError, match="expected"):
        from_catalog(catalog).predict(np.zeros((3, 4)))
