"""The original study's contract on `/compat/predict`: body shapes, stable labels, errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from persona.catalog import load_catalog
from persona.model import PersonaModel, from_catalog
from persona.serving.app import create_app
from persona.serving.compat import CANDIDATE_BASE, stable_indexes, to_feature_records
from persona.serving.holder import ModelSource
from persona.serving.predict import ApiError
from persona.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO / "01_model" / "personas.yaml")
# The rows of the original study's client (03_deployment/test_gunicorn.py there): two
# Sustainable Steve respondents and one Budget Bob.
ORIGINAL_ROWS = [
    [5.267844592017922, 9.038527987090323, 3.506074024159338, 1.9479126171645216,
     -3.836098637534244, -7.881183180600871, -6.6307668078106285, 3.0319909038843242,
     4.00735755812744, -1.1632153990676501],
    [5.267844592017922, 9.038527987090323, 3.506074024159338, 1.9479126171645216,
     -3.836098637534244, -7.881183180600871, -6.6307668078106285, 3.0319909038843242,
     4.00735755812744, -1.1632153990676501],
    [4.499870969600433, -10.104167280185836, -7.327319616485084, -5.869221088718748,
     -5.388042708088642, 3.7703252138116436, -3.527628901910611, 3.677010471509409,
     0.8067997068103117, -3.83049661092741],
]  # fmt: skip


@dataclass(frozen=True)
class Fake:
    model: PersonaModel
    name: str = "persona-classifier"
    version: str = "3"
    alias: str | None = "champion"
    uri: str = "test"
    tags: dict[str, Any] = field(default_factory=dict)


def source_of(model: PersonaModel) -> ModelSource:
    return ModelSource(lambda: Fake(model), lambda: None, "test")


def retrained() -> PersonaModel:
    """A retrained model: other order, Haley retired, one candidate persona."""
    c = CATALOG.centroids()
    return PersonaModel(
        ("budget-bob", "candidate-1", "sustainable-steve"),
        ("Budget Bob", "Candidate 1", "Sustainable Steve"),
        np.vstack([c[2], [40.0] * 10, c[0]]),
        np.full(3, 12.0),
    )


@pytest.fixture
def client_for(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    def build(model: PersonaModel, **overrides: Any) -> Any:
        app = create_app(make_settings(**overrides), source_of(model), start_reloader=False)
        return app.test_client()

    return build


def original_bodies() -> dict[str, Any]:
    frame = pd.DataFrame(ORIGINAL_ROWS)
    named = frame.copy()
    named.columns = [f"x{i}" for i in range(1, 11)]
    return {
        "records keyed 0..9": frame.to_dict(orient="records"),
        "records keyed x1..x10": named.to_dict(orient="records"),
        "list of lists": frame.to_numpy().tolist(),
    }


@pytest.mark.parametrize("shape", list(original_bodies()))
def test_original_body_shapes_answer_labels(client_for: Any, shape: str) -> None:
    client = client_for(from_catalog(CATALOG))
    response = client.post("/compat/predict", json=original_bodies()[shape])
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"labels": [0, 0, 2]}


def test_labels_stay_stable_across_retrain(client_for: Any) -> None:
    c = CATALOG.centroids()
    rows = [c[0].tolist(), c[2].tolist(), [40.0] * 10, [-90.0] * 10]
    v1 = client_for(from_catalog(CATALOG, np.full(3, 12.0))).post("/compat/predict", json=rows)
    v2 = client_for(retrained()).post("/compat/predict", json=rows)
    assert v1.get_json()["labels"] == [0, 2, -1, -1]
    # Steve and Bob keep 0 and 2 though the model order changed; the candidate gets 100.
    assert v2.get_json()["labels"] == [0, 2, CANDIDATE_BASE, -1]


def test_detail_adds_new_fields(client_for: Any) -> None:
    client = client_for(from_catalog(CATALOG))
    body = client.post("/compat/predict?detail=true", json=ORIGINAL_ROWS).get_json()
    assert body["labels"] == [0, 0, 2]
    assert body["model_name"] == "persona-classifier" and body["model_version"] == "3"
    assert [p["persona_id"] for p in body["predictions"]] == [
        "sustainable-steve",
        "sustainable-steve",
        "budget-bob",
    ]
    assert {"distance", "margin", "persona_name"} <= set(body["predictions"][0])


def test_label_map_names_each_index(client_for: Any) -> None:
    body = client_for(retrained()).get("/compat/labels").get_json()
    assert body["unassigned"] == -1 and body["model_version"] == "3"
    rows = {r["label"]: (r["persona_id"], r["served"]) for r in body["labels"]}
    assert rows == {
        0: ("sustainable-steve", True),
        1: ("eco-conscious-haley", False),
        2: ("budget-bob", True),
        100: ("candidate-1", True),
    }


def test_compat_errors_name_row_and_field(client_for: Any) -> None:
    client = client_for(from_catalog(CATALOG))
    bad = pd.DataFrame(ORIGINAL_ROWS).to_dict(orient="records")
    bad[1]["3"] = "abc"
    response = client.post("/compat/predict", json=bad)
    assert response.status_code == 422
    issue = response.get_json()["issues"][0]
    assert issue["row"] == 1 and issue["column"] == "x4" and "string" in issue["message"]
    short = client.post("/compat/predict", json=[[1.0, 2.0]])
    assert short.status_code == 422 and short.get_json()["issues"]
    assert client.post("/compat/predict", json={"a": 1}).status_code == 422
    assert client.post("/compat/predict", json=[]).status_code == 422
    assert (
        client.post("/compat/predict", data=b"[1,", content_type="application/json").status_code
        == 400
    )
    assert client.post("/compat/predict", data=b"[]", content_type="text/plain").status_code == 415


def test_compat_honours_token_and_limits(client_for: Any) -> None:
    client = client_for(from_catalog(CATALOG), api_token="s3cret", api_max_records=2)
    assert client.post("/compat/predict", json=ORIGINAL_ROWS[:1]).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post("/compat/predict", json=ORIGINAL_ROWS, headers=auth).status_code == 413
    ok = client.post("/compat/predict", json=ORIGINAL_ROWS[:2], headers=auth)
    assert ok.status_code == 200 and ok.get_json() == {"labels": [0, 0]}


def test_compat_counts_in_metrics(client_for: Any) -> None:
    client = client_for(from_catalog(CATALOG))
    client.post("/compat/predict", json=ORIGINAL_ROWS)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'route="/compat/predict"' in text
    assert 'persona_predictions_total{persona_id="budget-bob"}' in text


def test_unknown_persona_id_is_a_clear_503() -> None:
    with pytest.raises(ApiError) as info:
        stable_indexes(["sustainable-steve", "mystery"], CATALOG.ids)
    assert info.value.status == 503 and "mystery" in info.value.error


def test_to_feature_records_shapes() -> None:
    assert to_feature_records([{"0": 1, "9": 2}]) == [{"x1": 1, "x10": 2}]
    assert to_feature_records({"instances": [[0] * 10]})[0]["x10"] == 0
    with pytest.raises(ApiError):
        to_feature_records("x")


@pytest.mark.parametrize("shape", ["records keyed 0..9", "list of lists"])
def test_predict_points_an_original_body_to_compat(client_for: Any, shape: str) -> None:
    response = client_for(from_catalog(CATALOG)).post("/predict", json=original_bodies()[shape])
    assert response.status_code == 422
    body = response.get_json()
    assert "send it to POST /compat/predict" in body["error"] and body["issues"] == []
