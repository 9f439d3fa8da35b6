"""The Flask app with the test client: routes, errors, auth, metrics, hot swap semantics."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona.catalog import load_catalog
from persona.errors import ModelError
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, from_catalog, model_to_dict, read_model_folder
from persona.serving.app import create_app
from persona.serving.holder import ModelHolder, ModelSource
from persona.serving.source import local_source
from persona.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "01_model" / "personas.yaml"


@dataclass(frozen=True)
class Fake:
    model: PersonaModel
    name: str
    version: str
    alias: str | None = "champion"
    uri: str = "test"
    tags: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def catalog_model() -> PersonaModel:
    return from_catalog(load_catalog(CATALOG), np.full(3, 10.0))


@pytest.fixture
def model_dir(tmp_path: Path, catalog_model: PersonaModel) -> Path:
    folder = tmp_path / "model" / "artifacts"
    folder.mkdir(parents=True)
    (folder / "persona_model.json").write_text(json.dumps(model_to_dict(catalog_model)))
    return tmp_path / "model"


@pytest.fixture
def app_for(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    def build(source: ModelSource, **overrides: Any) -> Any:
        app = create_app(make_settings(**overrides), source, start_reloader=False)
        return app, app.test_client()

    return build


def rec(values: Any) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, [float(v) for v in values], strict=True))


def test_predict_list_and_instances(app_for: Any, model_dir: Path, catalog_model: Any) -> None:
    _, client = app_for(local_source(model_dir, "persona-classifier", "7"))
    rows = [rec(c) for c in catalog_model.centroids] + [rec([95] * 10)]
    body = client.post("/predict", json=rows).get_json()
    assert body["model_name"] == "persona-classifier" and body["model_version"] == "7"
    preds = body["predictions"]
    assert [p["persona_id"] for p in preds] == [*catalog_model.persona_ids, "unassigned"]
    assert preds[1]["persona_name"] == "Eco-Conscious Haley"
    assert preds[3]["persona_name"] == "Unassigned" and "nearest_persona_id" in preds[3]
    assert "nearest_persona_id" not in preds[0]
    direct = catalog_model.predict(np.array([list(r.values()) for r in rows]))
    assert [p["distance"] for p in preds] == pytest.approx(direct.distance.tolist())
    assert [p["margin"] for p in preds] == pytest.approx(direct.margin.tolist())
    wrapped = client.post("/predict", json={"instances": rows[:1]}).get_json()
    assert wrapped["predictions"][0]["persona_id"] == preds[0]["persona_id"]
    assert wrapped["predictions"][0]["margin"] == pytest.approx(preds[0]["margin"])


def test_single_persona_margin_is_null(app_for: Any) -> None:
    model = PersonaModel(("solo",), ("Solo",), np.zeros((1, 10)), np.array([np.inf]))
    source = ModelSource(lambda: Fake(model, "m", "1"), lambda: None, "fake")
    _, client = app_for(source)
    response = client.post("/predict", json=[rec([1] * 10)])
    assert response.status_code == 200
    assert response.get_json()["predictions"][0]["margin"] is None


@pytest.mark.parametrize(
    ("body", "content_type", "status", "text"),
    [
        (b"[]", "text/csv", 415, "unsupported content type"),
        (b"{", "application/json", 400, "line 1 column 2"),
        (b"[1e999]", "application/json", 422, "expected an object"),
        (b'{"instances": [], "limit": 3}', "application/json", 422, "instances"),
        (json.dumps([{"x1": 1}]).encode(), "application/json", 422, "missing feature"),
        (json.dumps([rec([1] * 10)] * 4).encode(), "application/json", 413, "too many"),
        (b"[" + b" " * 3000 + b"]", "application/json", 413, "too large"),
        (b'[{"x1": 1' + b"0" * 400 + b"}]", "application/vnd.api+json", 422, "invalid records"),
    ],
)
def test_client_errors(app_for: Any, model_dir: Path, body: bytes, content_type: str,
                       status: int, text: str) -> None:  # fmt: skip
    _, client = app_for(local_source(model_dir), api_max_records=3, api_max_body_bytes=2000)
    response = client.post("/predict", data=body, content_type=content_type)
    assert response.status_code == status
    assert response.content_type == "application/json"
    assert text in response.get_json()["error"]


def test_token(app_for: Any, model_dir: Path) -> None:
    _, client = app_for(local_source(model_dir), api_token="tok")
    row = [rec([0] * 10)]
    assert client.post("/predict", json=row).status_code == 401
    assert (
        client.post("/predict", json=row, headers={"Authorization": "Bearer no"}).status_code == 401
    )
    assert (
        client.post("/predict", json=row, headers={"Authorization": "Bearer tok"}).status_code
        == 200
    )
    assert client.get("/model").get_json()["auth"] is True


def test_not_ready_until_a_model_loads_then_hot_swap(app_for: Any, catalog_model: Any) -> None:
    state: dict[str, Any] = {"target": "1", "fail": True}
    other = PersonaModel(("a", "b"), ("A", "B"), np.eye(2, 10) * 5, np.array([np.inf, np.inf]))

    def load() -> Fake:
        if state["fail"]:
            raise ModelError("registry down")
        return Fake(catalog_model if state["target"] == "1" else other, "m", state["target"])

    app, client = app_for(ModelSource(load, lambda: state["target"], "fake"))
    holder: ModelHolder = app.extensions["persona"]["holder"]
    assert client.get("/ready").status_code == 503
    assert client.post("/predict", json=[rec([0] * 10)]).status_code == 503
    assert "registry down" in holder.last_error
    state["fail"] = False
    assert holder.refresh() and client.get("/ready").status_code == 200
    assert client.get("/model").get_json()["version"] == "1"
    state.update(target="2", fail=True)  # the alias moved but the new version fails to load
    assert not holder.refresh()
    assert client.get("/model").get_json()["version"] == "1"  # old model keeps serving
    state["fail"] = False
    assert holder.refresh()
    info = client.get("/model").get_json()
    assert info["version"] == "2" and [p["id"] for p in info["personas"]] == ["a", "b"]
    assert not holder.refresh()  # no move, no reload
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'persona_model_info{alias="champion",name="m",version="2"} 1.0' in metrics
    assert 'persona_model_info{alias="champion",name="m",version="1"} 0.0' in metrics
    assert 'persona_model_reloads_total{result="failed"} 2.0' in metrics


def test_reload_thread_swaps_in_background(app_for: Any, catalog_model: Any) -> None:
    import time

    state = {"target": "1"}
    source = ModelSource(lambda: Fake(catalog_model, "m", state["target"]),
                         lambda: state["target"], "fake")  # fmt: skip
    holder = ModelHolder(source, interval_s=0.05)
    holder.refresh()
    holder.ensure_started()
    try:
        state["target"] = "2"
        deadline = time.time() + 5
        while holder.current.version != "2" and time.time() < deadline:
            time.sleep(0.02)
        assert holder.current.version == "2"
    finally:
        holder.stop()


def test_metrics_health_and_json_errors(app_for: Any, model_dir: Path) -> None:
    _, client = app_for(local_source(model_dir))
    client.post("/predict", json=[rec([0] * 10), rec([0] * 10)])
    client.post("/predict", data=b"{", content_type="application/json")
    assert client.get("/health").get_json()["status"] == "ok"
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.get_json()["issues"] == []
    assert client.get("/predict").status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert 'persona_http_requests_total{method="POST",route="/predict",status="400"} 1.0' in text
    assert 'route="other",status="404"' in text
    assert "persona_predictions_total" in text


def test_local_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no persona_model\.json"):
        read_model_folder(tmp_path)
    (tmp_path / "persona_model.json").write_text("{}")
    with pytest.raises(ModelError, match=r"not a persona-model"):
        read_model_folder(tmp_path)
