"""Batch labeling: idempotence and lineage on the real PostgreSQL (and SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from werkzeug.serving import make_server

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.labeling import label_month
from persona.model import PersonaModel, from_catalog
from persona.registry.versions import LoadedModel
from persona.serving.app import create_app
from persona.serving.holder import ModelSource
from persona.settings import Settings
from persona.store import assignments, surveys
from persona.store.engine import open_store
from persona.synth import generate_month

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "01_model" / "personas.yaml"
N = 3000


def _store(url: str) -> Any:
    engine = open_store(url)
    catalog = load_catalog(CATALOG)
    for month, n in (("2025-03", 400), ("2025-04", N)):
        survey, _ = generate_month(catalog, month, n, seed=5)
        surveys.ingest_frame(engine, survey, month)
    return engine


def _v1() -> LoadedModel:
    model = from_catalog(load_catalog(CATALOG), np.full(3, 7.0))  # some rows unassigned
    return LoadedModel(model, "persona-classifier", "1", "champion", "test", {})


def _v2(v1: LoadedModel) -> LoadedModel:
    model = PersonaModel(("p", "q"), ("P", "Q"), v1.model.centroids[:2] + 1.0, np.full(2, np.inf))
    return LoadedModel(model, "persona-classifier", "2", "champion", "test", {})


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else (
        f"sqlite:///{tmp_path}/persona.db")  # fmt: skip
    engine = _store(url)
    yield engine
    engine.dispose()


def test_label_month_idempotent_with_lineage(
    engine: Any, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    v1 = _v1()
    frame = surveys.load_month(engine, "2025-04")
    expected = v1.model.predict(frame.loc[:, list(FEATURE_NAMES)].to_numpy())

    first = label_month(settings, engine, "2025-04", loaded=v1)
    assert (first["rows"], first["written"], first["skipped"]) == (N, N, 0)
    assert first["model_version"] == "1" and sum(first["persona_mix"].values()) == N
    assert 0 < first["persona_mix"]["unassigned"] < N
    again = label_month(settings, engine, "2025-04", loaded=v1)
    assert (again["written"], again["skipped"]) == (0, N)
    assert again["persona_mix"] == first["persona_mix"]

    stored = assignments.load_assignments(engine, "2025-04", "persona-classifier", "1")
    assert len(stored) == N and stored["response_id"].is_unique
    assert (stored["survey_month"] == "2025-04").all()
    stored = stored.set_index("response_id").loc[frame["response_id"]]
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    assert stored["persona_name"].tolist() == expected.persona_name.tolist()
    assert stored["nearest_persona_id"].tolist() == expected.nearest_id.tolist()
    np.testing.assert_allclose(stored["distance"], expected.distance)
    np.testing.assert_allclose(stored["margin"], expected.margin)
    assert stored["assigned_at"].notna().all()

    v2 = _v2(v1)
    third = label_month(settings, engine, "2025-04", loaded=v2)
    assert third["written"] == N and set(third["persona_mix"]) <= {"p", "q"}
    assert assignments.count_assignments(engine, "2025-04", "persona-classifier", "1") == N
    assert assignments.persona_mix(engine, "2025-04", "persona-classifier", "2") == third[
        "persona_mix"]  # fmt: skip
    assert len(assignments.load_assignments(engine, "2025-04")) == 2 * N
    assert assignments.count_assignments(engine, "2025-03", "persona-classifier", "1") == 0


def test_partial_rerun_writes_only_missing_rows(engine: Any, make_settings: Any) -> None:
    v1 = _v1()
    frame = surveys.load_month(engine, "2025-04")
    head = frame.iloc[:1000]
    pred = v1.model.predict(head.loc[:, list(FEATURE_NAMES)].to_numpy())
    ids = head["response_id"].to_numpy()
    assert assignments.write_assignments(engine, ids, "2025-04", v1.name, "1", pred) == 1000
    assert assignments.write_assignments(engine, ids, "2025-04", v1.name, "1", pred) == 0
    result = label_month(make_settings(), engine, "2025-04", loaded=v1)
    assert (result["written"], result["skipped"]) == (N - 1000, 1000)
    assert assignments.count_assignments(engine, "2025-04", v1.name, "1") == N


@pytest.mark.postgres
def test_label_via_api_matches_in_process(pg_url: str, make_settings: Any) -> None:
    engine = _store(pg_url)
    v1 = _v1()
    settings = make_settings(database_url=pg_url, api_token="t0k", api_max_records=500)
    app = create_app(settings, ModelSource(lambda: v1, lambda: None, "test"), start_reloader=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = label_month(settings, engine, "2025-04", via_api=url, chunk=500)
    finally:
        server.shutdown()
        thread.join(5)
    assert result["via"] == url and result["written"] == N and result["model_version"] == "1"
    frame = surveys.load_month(engine, "2025-04")
    expected = v1.model.predict(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    stored = assignments.load_assignments(engine, "2025-04", v1.name, "1")
    stored = stored.set_index("response_id").loc[frame["response_id"]]
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    assert stored["nearest_persona_id"].tolist() == expected.nearest_id.tolist()
    np.testing.assert_allclose(stored["distance"], expected.distance, rtol=1e-12)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_label_with_registered_champion(pg_url: str, make_settings: Any) -> None:
    from persona.registry import bootstrap

    engine = _store(pg_url)
    settings = make_settings(database_url=pg_url)
    version = bootstrap(settings, engine)["version"]
    result = label_month(settings, engine, "2025-04")
    assert result["model_name"] == settings.model_name
    assert result["model_version"] == version and result["written"] == N
    assert assignments.count_assignments(engine, "2025-04", settings.model_name, version) == N
    engine.dispose()
