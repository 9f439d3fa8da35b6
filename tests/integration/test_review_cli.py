"""`persona review` and the monitor's refusal of a month never ingested, as a person runs them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from persona import flows
from persona.catalog import load_catalog
from persona.cli.review import NamePairError, parse_names
from persona.errors import NotIngestedError
from persona.months import Month
from persona.settings import Settings
from persona.store import survey_ingest
from persona.store.engine import open_store
from persona.synth import generate_month
from tests.integration.test_cli_json import _run


def test_monitor_refuses_a_month_never_ingested_and_records_nothing(tmp_path: Path) -> None:
    assert _run(["data", "generate", "--out", "data", "--months", "1"], tmp_path).returncode == 0
    assert _run(["data", "ingest", "data"], tmp_path).returncode == 0
    assert _run(["model", "bootstrap"], tmp_path).returncode == 0
    proc = _run(["monitor", "--month", "2025-11"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout)["error"] == (
        "no survey rows for month 2025-11 for monitoring: ingest it first"
    )
    with sqlite3.connect(tmp_path / "persona.db") as db:
        assert db.execute("select count(*) from monitoring_runs").fetchone() == (0,)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        runs = db.execute("select name from runs").fetchall()
    assert not any("2025-11" in str(name) for (name,) in runs), runs


def test_review_lists_nothing_and_refuses_an_unknown_decision(tmp_path: Path) -> None:
    assert _run(["data", "generate", "--out", "data", "--months", "1"], tmp_path).returncode == 0
    assert _run(["data", "ingest", "data"], tmp_path).returncode == 0
    assert _run(["model", "bootstrap"], tmp_path).returncode == 0
    listed = _run(["review"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"model": "persona-classifier", "reviews": []}
    proc = _run(["review", "approve", "1", "--name", "budget-bob=Bob"], tmp_path)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"] == "version 1 has no pending review (review: None)"
    proc = _run(["review", "reject", "1", "--reason", "no"], tmp_path)
    assert proc.returncode == 2 and "has no pending review" in json.loads(proc.stdout)["error"]


def test_name_pairs() -> None:
    assert parse_names(["candidate-1=Thrifty Tina", " candidate-2 = Bo "]) == {
        "candidate-1": "Thrifty Tina",
        "candidate-2": "Bo",
    }
    for bad in ("candidate-1", "=Tina", "candidate-1="):
        with pytest.raises(NamePairError, match="expected PERSONA_ID="):
            parse_names([bad])


def test_a_run_without_month_runs_the_latest_ingested_one(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    engine = open_store(settings.database_url)
    catalog = load_catalog(settings.persona_catalog)
    with pytest.raises(NotIngestedError, match="no survey rows for month 2026-11"):
        flows.scheduled_month(settings, "", "2026-12-07T10:00:00+00:00")
    for month in ("2025-01", "2025-02"):
        frame, _ = generate_month(catalog, month, 50, "stable", 1)
        survey_ingest.ingest_frame(engine, frame, Month(month), f"synth-{month}")
    engine.dispose()
    assert flows.scheduled_month(settings, "", "2026-12-07T10:00:00+00:00") == "2025-02"
    assert flows.scheduled_month(settings, " ", "2025-02-02") == "2025-01"
    assert flows.scheduled_month(settings, "2025-07", "2026-12-07") == "2025-07"
