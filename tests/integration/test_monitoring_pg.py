"""run_check end to end: real PostgreSQL store, real Evidently, real MLflow (SQLite), CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from persona import registry
from persona.catalog import load_catalog
from persona.errors import MonitoringError, NotIngestedError
from persona.model import PersonaModel
from persona.monitoring import run_check
from persona.months import Month, Window
from persona.settings import Settings
from persona.store import survey_ingest
from persona.store.engine import open_store
from persona.store.monitoring import list_runs
from persona.store.schema import monitoring_runs
from persona.synth import generate_month

PLAN = {"2025-01": "stable", "2025-02": "stable", "2025-03": "spread"}


@pytest.fixture
def world(pg_url: str, make_settings: Callable[..., Settings]) -> dict[str, Any]:
    cfg = make_settings(database_url=pg_url)
    engine = open_store(pg_url)
    catalog = load_catalog(cfg.persona_catalog)
    for month, scenario in PLAN.items():
        frame, _ = generate_month(catalog, month, 500, scenario, seed=7)
        survey_ingest.ingest_frame(engine, frame, month, f"synth-{month}")
    tiny, _ = generate_month(catalog, "2025-04", 20, "stable", seed=7)
    survey_ingest.ingest_frame(engine, tiny, "2025-04", "synth-tiny")
    registry.bootstrap(cfg, engine)  # v1 = catalog, calibrated on 2025-01 (the reference)
    yield {"cfg": cfg, "engine": engine}
    engine.dispose()


def test_run_check_stores_reports_logs_and_is_idempotent(world) -> None:
    cfg, engine = world["cfg"], world["engine"]
    checked = run_check(cfg, engine, Month("2025-02"))
    stable = checked.to_dict()
    assert (checked.month, checked.reference_months) == ("2025-02", Window.of(["2025-01"]))
    assert checked.verdict == stable["verdict"] and not checked.existing
    assert stable["reference_months"] == ["2025-01"]  # the champion's calibration month
    assert stable["verdict"] in ("no_drift", "watch")
    assert (stable["model_name"], stable["model_version"]) == (cfg.model_name, "1")
    assert len(stable["features"]) == 10 and stable["features"][0]["test"] == "ks"
    assert stable["n_current"] == 500 and stable["n_current_sampled"] == 500
    assert Path(stable["report_path"]).is_file()
    assert "current 500 of 500" in Path(stable["report_path"]).read_text(encoding="utf-8")
    assert stable["mlflow_run_id"]

    again = run_check(cfg, engine, Month("2025-02")).to_dict()
    assert again["existing"] and again["run_id"] == stable["run_id"]
    assert again["verdict"] == stable["verdict"] and again["features"] == stable["features"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(monitoring_runs)).scalar() == 1

    drifted = run_check(cfg, engine, Month("2025-03")).to_dict()
    # The baseline grew: the calibration month plus February, which v1 judged no_drift.
    grown = ["2025-01", "2025-02"] if stable["verdict"] == "no_drift" else ["2025-01"]
    assert drifted["reference_months"] == grown
    assert drifted["n_reference"] == 500 * len(grown)
    assert drifted["verdict"] == "retrain"
    assert any(" spread x" in r for r in drifted["reasons"])
    assert [r.survey_month for r in list_runs(engine)] == ["2025-03", "2025-02"]

    from mlflow import MlflowClient

    mlc = MlflowClient(cfg.mlflow_tracking_uri)
    run = mlc.get_run(drifted["mlflow_run_id"])
    assert run.info.run_name == "monitor-2025-03"
    assert run.data.tags["verdict"] == "retrain"
    assert run.data.metrics["distance_ratio"] > 1.2
    artifacts = {a.path for a in mlc.list_artifacts(run.info.run_id, "monitoring")}
    assert "monitoring/check.json" in artifacts
    assert f"monitoring/{Path(drifted['report_path']).name}" in artifacts


def test_the_baseline_is_the_stored_verdicts_so_a_recheck_keeps_it(world) -> None:
    """A `retrain` month never joins; re-checking an old month does not change the baseline."""
    cfg, engine = world["cfg"], world["engine"]
    feb = run_check(cfg, engine, Month("2025-02"))
    run_check(cfg, engine, Month("2025-03"))  # retrain: stays out
    tiny = run_check(cfg, engine, Month("2025-04"))
    expected = ["2025-01", "2025-02"] if feb.verdict == "no_drift" else ["2025-01"]
    assert tiny.reference_months.to_list() == expected
    # February checked again against another window: its first verdict still counts.
    run_check(cfg, engine, Month("2025-02"), Window.of(["2025-03"]))
    again = run_check(cfg, engine, Month("2025-04"))
    assert again.reference_months == tiny.reference_months and again.existing
    capped = run_check(cfg.model_copy(update={"baseline_max_months": 1}), engine, Month("2025-04"))
    assert capped.reference_months == Window.of(["2025-01"])
    # The row cap: February (500 rows) does not fit beside January's 500 in 999 rows.
    rows_capped = run_check(cfg.model_copy(update={"baseline_max_rows": 999}), engine,
                            Month("2025-04"))  # fmt: skip
    assert rows_capped.reference_months == Window.of(["2025-01"])
    assert rows_capped.to_dict()["n_reference"] == 500


def test_explicit_reference_window(world) -> None:
    result = run_check(
        world["cfg"], world["engine"], Month("2025-03"), Window.of(["2025-02", "2025-01"])
    ).to_dict()
    assert result["reference_months"] == ["2025-01", "2025-02"]
    assert result["n_reference"] == 1000
    assert result["verdict"] == "retrain"


def test_tiny_or_empty_month_is_insufficient_data(world) -> None:
    tiny = run_check(world["cfg"], world["engine"], Month("2025-04")).to_dict()
    assert tiny["verdict"] == "insufficient_data" and tiny["n_current"] == 20
    assert tiny["features"] == [] and tiny["report_path"] is None
    empty = run_check(world["cfg"], world["engine"], Month("2025-06")).to_dict()
    assert empty["verdict"] == "insufficient_data" and empty["n_current"] == 0


def test_missing_reference_is_an_error(world) -> None:
    with pytest.raises(NotIngestedError, match="no survey rows for month 2024-12 for the ref"):
        run_check(world["cfg"], world["engine"], Month("2025-02"), Window.of(["2024-12"]))


def test_mismatched_model_columns_are_an_error(world) -> None:
    nine = tuple(f"x{i}" for i in range(1, 10))
    model = PersonaModel(("a", "b"), ("A", "B"), np.array([[0.0] * 9, [1.0] * 9]), np.ones(2), nine)
    loaded = registry.LoadedModel(model, "odd", "9", None, "test")
    with pytest.raises(MonitoringError, match="uses features"):
        run_check(
            world["cfg"], world["engine"], Month("2025-02"), Window.of(["2025-01"]), loaded=loaded
        )


def test_cli_monitor_json_and_table(world, monkeypatch) -> None:
    from persona.cli import app
    from persona.settings import get_settings

    cfg = world["cfg"]
    monkeypatch.setattr("persona.cli._common.get_settings", lambda: cfg)
    runner = CliRunner()
    out = runner.invoke(app, ["monitor", "--month", "2025-03", "--reference", "2025-01", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["verdict"] == "retrain" and doc["reference_months"] == ["2025-01"]
    table = runner.invoke(app, ["monitor", "--month", "2025-03"])
    assert table.exit_code == 0
    assert "Data drift per feature" in table.output and "retrain" in table.output
    bad = runner.invoke(app, ["monitor", "--month", "2025-13", "--json"])
    assert bad.exit_code == 2 and "error" in json.loads(bad.stdout)
    missing = runner.invoke(app, ["monitor", "--month", "2025-02", "--reference", "2024-01"])
    assert missing.exit_code == 2 and "no survey rows for month 2024-01" in missing.output
    assert get_settings  # the real settings function is untouched
