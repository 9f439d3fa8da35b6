"""Registry on the embedded stores: SQLite MLflow + local artifacts + SQLite survey store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from typer.testing import CliRunner

from persona import registry
from persona.catalog import load_catalog
from persona.errors import NotIngestedError, RegistryError
from persona.features import FEATURE_NAMES, validate_frame
from persona.months import Month, Window
from persona.registry.record import FILTER_TAGS
from persona.registry.versions import download_model
from persona.settings import get_settings
from persona.store import events, survey_ingest, survey_queries
from persona.store.engine import open_store
from persona.store.survey_queries import stored_window
from persona.synth import generate_month
from tests.conftest import CATALOG, REPO

MONTHS = {"2025-01": "stable", "2025-02": "stable", "2025-03": "new_segment"}


def ingest(engine: Any, months: dict[str, str], n: int = 400) -> None:
    catalog = load_catalog(CATALOG)
    for month, scenario in months.items():
        frame, _ = generate_month(catalog, month, n, scenario, seed=5)
        survey_ingest.ingest_frame(engine, frame, month)


@pytest.fixture
def env(make_settings):  # type: ignore[no-untyped-def]
    settings = make_settings(k_max=5)
    engine = open_store(settings.database_url)
    ingest(engine, MONTHS)
    yield settings, engine
    engine.dispose()


def exp_id(settings: Any) -> str:
    exp = MlflowClient(settings.mlflow_tracking_uri).get_experiment_by_name("persona")
    return str(exp.experiment_id)


def test_bootstrap_is_idempotent(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, engine = env
    first = registry.bootstrap(settings, engine).to_dict()
    assert first["created"] and first["version"] == "1" and first["aliases"] == ["champion"]
    assert first["tags"]["training_months"] == "2025-01" and first["tags"]["kind"] == "catalog"
    again = registry.bootstrap(settings, engine, calibrate_month=Month("2025-02")).to_dict()
    assert not again["created"] and again["version"] == "1"
    assert registry.champion_reference_months(settings) == Window.of(["2025-01"])
    assert registry.alias_version(settings, "champion") == "1"
    assert registry.alias_version(settings, "challenger") is None
    rows = events.list_events(engine, settings.model_name)
    assert [(r.event, r.from_version, r.to_version) for r in rows] == [("bootstrap", None, "1")]
    # Registered from a logged model of the run, and the logged model lists the version
    # (what the MLflow UI shows as registered). On a local store the source is the logged
    # model's artifact location: such a store resolves a ``models:/<id>`` source with
    # MLflow's global tracking URI, which the package never sets (servers get models:/).
    mlc = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    mv = mlc.get_model_version(settings.model_name, "1")
    (logged,) = mlc.search_logged_models([exp_id(settings)], filter_string="name = 'model'")
    assert mv.source == logged.artifact_location and logged.source_run_id == mv.run_id
    assert logged.status == LoggedModelStatus.READY
    links = logged.tags["mlflow.modelVersions"]
    assert json.loads(links) == [{"name": settings.model_name, "version": "1"}]
    loaded = registry.load_model_for_serving(settings)
    assert loaded.version == "1" and loaded.alias == "champion"
    assert loaded.model.persona_ids == tuple(load_catalog(CATALOG).ids)
    assert np.isfinite(loaded.model.radii).all()
    exp = MlflowClient(settings.mlflow_tracking_uri).get_experiment_by_name("persona")
    root = tmp_path / "var" / "mlartifacts"
    assert exp.artifact_location == root.resolve().as_uri()
    assert list(root.rglob("persona_model.json")) and list(root.rglob("persona_map.png"))


def test_pyfunc_predictions_equal_in_process(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, engine = env
    registry.bootstrap(settings, engine)
    loaded = registry.load_model_for_serving(settings)
    frame = survey_queries.load_month(engine, "2025-03").loc[:, list(FEATURE_NAMES)]
    pyfunc = mlflow.pyfunc.load_model(
        download_model(settings, f"models:/{settings.model_name}@champion", tmp_path / "c")
    )
    out = pyfunc.predict(frame)
    pred = loaded.model.predict(validate_frame(frame))  # the in-process path of API/labeler
    assert list(out.columns) == ["persona_id", "persona_name", "distance", "margin"]
    assert list(out["persona_id"]) == list(pred.persona_id)
    assert list(out["persona_name"]) == list(pred.persona_name)
    np.testing.assert_array_equal(out["distance"].to_numpy(), pred.distance)
    np.testing.assert_array_equal(out["margin"].to_numpy(), pred.margin)
    assert (out["persona_id"] == "unassigned").sum() > 0  # the new segment is beyond radius
    with pytest.raises(Exception, match="x10"):
        pyfunc.predict(frame.drop(columns=["x10"]))
    folder = download_model(settings, f"models:/{settings.model_name}/1", tmp_path / "v1")
    local = registry.load_model_for_serving(settings, folder)
    assert local.version == "local" and local.model.persona_ids == loaded.model.persona_ids
    # The package code travels with the model (loads where `persona` is not installed).
    assert (Path(folder) / "code" / "persona" / "pyfunc.py").is_file()
    assert not list((Path(folder) / "code").rglob("__pycache__"))
    script = (
        "import sys, importlib.util\n"
        f"sys.path = [p for p in sys.path if p != {str(REPO / 'src')!r}]\n"
        "assert importlib.util.find_spec('persona') is None\n"
        "import mlflow.pyfunc, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model({folder!r})\n"
        "cols = [f'x{i}' for i in range(1, 11)]\n"
        "print(m.predict(pd.DataFrame([[0.0] * 10], columns=cols))['persona_id'][0])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    expected = loaded.model.predict(np.zeros((1, len(FEATURE_NAMES)))).persona_id[0]
    assert proc.returncode == 0 and proc.stdout.strip() == expected, proc.stderr[-2000:]


def test_train_promote_rollback(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, engine = env
    registry.bootstrap(settings, engine)
    result = registry.train_challenger(
        settings, engine, Window.of(["2025-02"]), "test retrain"
    ).to_dict()
    assert result["created"] and result["version"] == "2" and result["aliases"] == ["challenger"]
    assert result["k"] == 3 and result["candidates"] == [] and result["label_stability"] >= 0.99
    tags = result["tags"]
    assert tags["training_months"] == "2025-02" and tags["gates_passed"] == "true"
    assert tags["data_hash"] == survey_queries.month_fingerprint(engine, ["2025-02"])
    # The details live in the run's training_result.json (whole); tags keep the filters.
    mlc = MlflowClient(settings.mlflow_tracking_uri)
    record = json.loads(
        Path(
            mlc.download_artifacts(result["run_id"], "training_result.json", str(tmp_path))
        ).read_text()
    )
    assert record["selection_metric"] == "silhouette" and record["score"] > 0
    assert record["gates"] == result["gates"] and record["training_months"] == ["2025-02"]
    assert set(tags) == set(FILTER_TAGS)  # no gates / detail JSON in tags any more
    runs = MlflowClient(settings.mlflow_tracking_uri).search_runs([exp_id(settings)])
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result["run_id"]]
    assert sorted(r.data.params["k"] for r in nested) == ["2", "3", "4", "5"]
    assert all("silhouette" in r.data.metrics for r in nested)

    same = registry.train_challenger(settings, engine, Window.of(["2025-02"]), "again").to_dict()
    assert not same["created"] and same["version"] == "2" and "run_id" not in same
    first = {k: v for k, v in result.items() if k not in ("created", "run_id", "sweep")}
    assert {k: same[k] for k in first} == first  # read back from the artifact, whole

    promoted = registry.promote(settings, engine, reason="ok", actor="tester").to_dict()
    assert promoted["promoted"] and promoted["previous"] == "1" and promoted["gates"]["passed"]
    assert registry.alias_version(settings, "champion") == "2"
    assert registry.alias_version(settings, "challenger") is None
    assert registry.champion_reference_months(settings) == Window.of(["2025-02"])

    back = registry.rollback(settings, engine, reason="bad", actor="tester").to_dict()
    assert back == {**back, "rolled_back": True, "version": "1", "previous": "2"}
    assert registry.load_model_for_serving(settings).version == "1"
    rows = events.list_events(engine, settings.model_name)
    assert [(r.event, r.from_version, r.to_version, r.actor) for r in rows] == [
        ("bootstrap", None, "1", "system"),
        ("promote", "1", "2", "tester"),
        ("rollback", "2", "1", "tester"),
    ]
    versions = {v.version: v for v in registry.list_versions(settings)}
    assert json.loads(versions["2"].tags["promoted"])["actor"] == "tester"
    assert "restored_by_rollback" in versions["1"].tags
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(settings, engine)


def test_new_segment_window_registers_candidate(env) -> None:  # type: ignore[no-untyped-def]
    settings, engine = env
    registry.bootstrap(settings, engine)
    months = stored_window(engine, Month("2025-03"), 3)
    assert months.to_list() == ["2025-01", "2025-02", "2025-03"]
    result = registry.train_challenger(
        settings, engine, months, "drift", drift_demanded=True
    ).to_dict()
    assert result["candidates"] == ["candidate-1"] and result["tags"]["needs_review"] == "true"
    assert result["personas"][-1] == "candidate-1" and len(result["personas"]) == 4
    assert result["needs_review"] and result["review_reasons"][0].startswith(
        "candidate candidate-1: "
    )
    [detail] = result["candidates_detail"]
    assert detail["rows"] > 50 and 12.0 <= detail["distance"] <= 21.0
    gates = {c["name"]: c for c in result["gates"]["checks"]}
    assert gates["absorbed"]["passed"] and result["gates"]["absorbed"]["rows"] == 0

    # A person names the candidate; the name survives the next retrain (alignment keeps it).
    from persona.registry.naming import given_names, name_persona

    with pytest.raises(RegistryError, match="not in the champion or challenger"):
        name_persona(settings, "candidate-9", "Nobody")
    name_persona(settings, "candidate-1", "Thrifty Tina")
    assert given_names(settings) == {"candidate-1": "Thrifty Tina"}
    promoted = registry.promote(settings, engine, reason="reviewed", actor="tester").to_dict()
    assert promoted["promoted"], promoted
    again = registry.train_challenger(
        settings, engine, Window.of(["2025-03"]), "later retrain"
    ).to_dict()
    assert again["personas"][-1] == "candidate-1" and not again["candidates"]
    later = registry.load_model_for_serving(
        settings, f"models:/{settings.model_name}/{again['version']}"
    ).model
    assert later.persona_names[-1] == "Thrifty Tina"


def test_gates_refuse_a_worse_challenger(make_settings, env) -> None:  # type: ignore[no-untyped-def]
    settings, engine = env
    registry.bootstrap(settings, engine)
    worse = make_settings(k_min=2, k_max=2, selection_metric="calinski_harabasz")
    result = registry.train_challenger(
        worse, engine, Window.of(["2025-02"]), "forced k=2"
    ).to_dict()
    gates = result["gates"]
    assert not gates["passed"] and result["tags"]["gates_passed"] == "false"
    assert {c["name"]: c["passed"] for c in gates["checks"]} == {
        "metric": False,
        "label_stability": False,
        "absorbed": True,
    }
    refused = registry.promote(worse, engine).to_dict()
    assert not refused["promoted"] and "refused" in refused["note"]
    assert registry.alias_version(settings, "champion") == "1"
    assert [r.event for r in events.list_events(engine)] == ["bootstrap"]
    forced = registry.promote(worse, engine, force=True, reason="override").to_dict()
    assert forced["promoted"] and forced["forced"]
    assert registry.alias_version(settings, "champion") == result["version"]


def test_unknown_alias_version_and_bad_data(env) -> None:  # type: ignore[no-untyped-def]
    settings, engine = env
    with pytest.raises(RegistryError, match="alias 'champion'"):
        registry.train_challenger(settings, engine, Window.of(["2025-02"]))
    registry.bootstrap(settings, engine)
    with pytest.raises(RegistryError, match="no version with alias 'nope'"):
        registry.load_model_for_serving(settings, f"models:/{settings.model_name}@nope")
    with pytest.raises(RegistryError, match="no version '99'"):
        registry.promote(settings, engine, version="99")
    with pytest.raises(RegistryError, match="no challenger"):
        registry.promote(settings, engine)
    with pytest.raises(NotIngestedError, match="no survey rows for month 2024-12 for training"):
        registry.train_challenger(settings, engine, Window.of(["2024-12"]))
    with pytest.raises(RegistryError, match="not a persona pyfunc model folder"):
        registry.load_model_for_serving(settings, "/nonexistent/folder")


def test_no_half_registered_version(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, engine = env
    registry.bootstrap(settings, engine)

    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("registry went away")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", boom)
    with pytest.raises(RuntimeError, match="went away"):
        registry.train_challenger(settings, engine, Window.of(["2025-02"]))
    monkeypatch.undo()
    assert [v.version for v in registry.list_versions(settings)] == ["1"]
    retry = registry.train_challenger(settings, engine, Window.of(["2025-02"])).to_dict()
    assert retry["created"] and retry["aliases"] == ["challenger"]


def test_bootstrap_event_failure_leaves_no_champion(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from persona.errors import StoreError
    from persona.store import events

    settings, engine = env

    def fail(*_args: Any, **_kwargs: Any) -> int:
        raise StoreError("survey store went away")

    monkeypatch.setattr(events, "record_event", fail)
    with pytest.raises(StoreError, match="went away"):
        registry.bootstrap(settings, engine)
    monkeypatch.undo()
    assert registry.alias_version(settings, "champion") is None
    assert registry.list_versions(settings) == []
    done = registry.bootstrap(settings, engine).to_dict()
    assert done["created"] and "champion" in done["aliases"]
    assert [e.event for e in events.list_events(engine)] == ["bootstrap"]


def test_cli_model_commands(env, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from persona.cli import app

    settings, _ = env
    monkeypatch.chdir(tmp_path)
    for key in ("database_url", "mlflow_tracking_uri", "mlflow_artifact_root", "k_max"):
        monkeypatch.setenv(key.upper(), str(getattr(settings, key)))
    monkeypatch.setenv("PERSONA_CATALOG", str(CATALOG))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> dict[str, Any]:
        out = runner.invoke(app, ["model", *args, "--json"])
        assert out.exit_code in (0, 2), out.output
        return {"exit": out.exit_code, **json.loads(out.stdout.strip().splitlines()[-1])}

    try:
        assert run("bootstrap")["version"] == "1"
        trained = run("train", "--month", "2025-02", "--window", "1")
        assert trained["training_months"] == ["2025-02"] and trained["version"] == "2"
        assert run("promote")["promoted"] is True
        listed = run("list")
        assert [v["aliases"] for v in listed["versions"]] == [[], ["champion"]]
        assert run("rollback")["version"] == "1"
        error = run("promote", "--version", "42")
        assert error["exit"] == 2 and error["type"] == "RegistryError"
        bad = run("train", "--months", "2025-13")
        assert bad["exit"] == 2 and "YYYY-MM" in bad["error"]
        named = runner.invoke(app, ["catalog", "name", "budget-bob", "Bargain Bob", "--json"])
        assert named.exit_code == 0, named.output
        assert json.loads(named.stdout.strip().splitlines()[-1])["name"] == "Bargain Bob"
        unknown = runner.invoke(app, ["catalog", "name", "nobody", "X", "--json"])
        assert unknown.exit_code == 2 and "not in the champion" in unknown.stdout
    finally:
        get_settings.cache_clear()


def test_serving_load_reads_its_own_registry_whatever_the_default(  # type: ignore[no-untyped-def]
    env, monkeypatch, tmp_path: Path
) -> None:
    # A parent process may export MLFLOW_REGISTRY_URI to its children: MLflow's default
    # registry must not decide where a server or CLI reads from.
    settings, engine = env
    registry.bootstrap(settings, engine)
    other = f"sqlite:///{tmp_path / 'other-registry.db'}"
    from mlflow.tracking._model_registry import utils as registry_utils

    monkeypatch.setattr(registry_utils, "_registry_uri", other)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", other)
    assert mlflow.get_registry_uri() == other
    loaded = registry.load_model_for_serving(settings)
    assert loaded.version == "1" and loaded.model.persona_ids == tuple(load_catalog(CATALOG).ids)
