# ruff: noqa: F811  (pytest fixtures imported from servers.py are used as parameters)
"""Registry against real servers: MLflow server on PostgreSQL, artifacts in the GCS emulator."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from persona import registry
from persona.features import FEATURE_NAMES, validate_frame
from persona.months import Window
from persona.registry.versions import download_model
from persona.store import survey_queries
from persona.store.engine import open_store
from tests.integration.servers import GcsEmulator, gcs_emulator, mlflow_server  # noqa: F401
from tests.integration.test_registry_local import ingest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MONTHS = {"2025-01": "stable", "2025-02": "stable"}


def test_server_postgres_gcs_round_trip(
    make_settings, mlflow_server: str, gcs_emulator: GcsEmulator, monkeypatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)  # the client has no GCS access
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    settings = make_settings(mlflow_tracking_uri=mlflow_server, k_max=4)
    engine = open_store(settings.database_url)
    ingest(engine, MONTHS)
    try:
        assert registry.bootstrap(settings, engine).version == "1"
        trained = registry.train_challenger(
            settings, engine, Window.of(["2025-02"]), "server test"
        ).to_dict()
        assert trained["created"] and trained["aliases"] == ["challenger"]
        # The details come back from the run's training_result.json through the server.
        again = registry.find_challenger(settings, engine, Window.of(["2025-02"]))
        assert again is not None and again.gates == trained["gates"] and again.k == trained["k"]
        assert registry.promote(settings, engine).promoted
        loaded = registry.load_model_for_serving(
            settings, f"models:/{settings.model_name}@champion"
        )
        assert loaded.version == trained["version"] and loaded.alias == "champion"
        # On a server the source is the logged model, as mlflow.register_model gives.
        source = MlflowClient(mlflow_server).get_model_version(settings.model_name, "2").source
        assert source.startswith("models:/m-"), source
        exp = MlflowClient(mlflow_server).get_experiment_by_name(settings.mlflow_experiment)
        assert exp.artifact_location.startswith("mlflow-artifacts:")
        frame = survey_queries.load_month(engine, "2025-02").loc[:, list(FEATURE_NAMES)]
        champion = f"models:/{settings.model_name}@champion"
        pyfunc = mlflow.pyfunc.load_model(download_model(settings, champion, tmp_path / "c"))
        out = pyfunc.predict(frame)
        pred = loaded.model.predict(validate_frame(frame))
        assert list(out["persona_id"]) == list(pred.persona_id)
        np.testing.assert_array_equal(out["distance"].to_numpy(), pred.distance)
    finally:
        engine.dispose()
    names = gcs_emulator.blob_names("mlflow/")
    assert sum(n.endswith("artifacts/persona_model.json") for n in names) == 2
    assert any(n.endswith("plots/persona_map.png") for n in names)
    assert any(n.endswith("MLmodel") for n in names)


def test_direct_gcs_artifact_root_with_sqlite_store(
    make_settings, gcs_emulator: GcsEmulator, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    root = f"gs://{gcs_emulator.bucket}/direct"
    settings = make_settings(mlflow_artifact_root=root, k_max=3)
    engine = open_store(settings.database_url)
    ingest(engine, {"2025-01": "stable"})
    try:
        assert registry.bootstrap(settings, engine).created
        loaded = registry.load_model_for_serving(settings)
    finally:
        engine.dispose()
    exp = MlflowClient(settings.mlflow_tracking_uri).get_experiment_by_name("persona")
    assert exp.artifact_location == root
    assert loaded.version == "1" and loaded.model.k == 3
    names = gcs_emulator.blob_names("direct/")
    assert any(n.endswith("artifacts/persona_model.json") for n in names)
