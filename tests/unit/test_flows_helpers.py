"""Fast checks of the cycle's presentation and of the Mage blocks' helper module."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from persona.cli import flow as flow_cli
from persona.months import parse_month_list

HELPER = Path(__file__).resolve().parents[2] / "02_pipeline/persona_pipeline/utils/persona_cli.py"


def _helper() -> Any:
    spec = importlib.util.spec_from_file_location("persona_cli_helper", HELPER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_month_variables_of_the_blocks() -> None:
    helper = _helper()
    assert helper.month_vars({"month": "2025-03", "reference_month": ""}) == ("2025-03", None)
    assert helper.month_vars({"month": "2025-03", "reference_month": "2025-01"}) == (
        "2025-03",
        "2025-01",
    )
    # The schedules leave month empty: the month before the execution date.
    assert helper.month_vars({"month": "", "execution_date": "2026-01-02T06:00:00"})[0] == (
        "2025-12"
    )
    assert helper.previous_month("2025-04-02 06:00:00") == "2025-03"
    with pytest.raises(ValueError, match="'month' must be YYYY-MM"):
        helper.month_vars({"month": "2025-3"})


def test_verdict_and_postgres_env(monkeypatch: pytest.MonkeyPatch) -> None:
    helper = _helper()
    assert helper.verdict({"verdict": "retrain"}) == "retrain"
    assert helper.verdict({"decision": {"verdict": "watch"}}) == "watch"
    assert helper.verdict(None) is None
    for key in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DBNAME", "POSTGRES_USER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("POSTGRES_PASSWORD", "kept")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://ann:s%40cret@db.local:6543/persona")
    assert helper.postgres_env_from_database_url() is True
    assert os.environ["POSTGRES_HOST"] == "db.local" and os.environ["POSTGRES_PORT"] == "6543"
    assert os.environ["POSTGRES_DBNAME"] == "persona" and os.environ["POSTGRES_USER"] == "ann"
    assert os.environ["POSTGRES_PASSWORD"] == "kept"  # set values win
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/persona.db")
    assert helper.postgres_env_from_database_url() is False


def test_summary_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    summary = {
        "month": "2025-03",
        "rows": 500,
        "verdict": "retrain",
        "reasons": ["unassigned rate 6.8% >= 5.0%"],
        "reference_months": ["2025-01"],
        "model_version_before": "1",
        "model_version_after": "1",
        "challenger_version": "2",
        "promoted": False,
        "labels_written": 500,
        "persona_mix": {"budget-bob": 300, "unassigned": 200},
        "report_path": None,
    }
    flow_cli.render(summary)
    err = capsys.readouterr().err
    assert "retrain" in err and "budget-bob 60%" in err
    assert "persona model promote --version 2" in err
    assert parse_month_list("2025-02, 2025-01") == ["2025-01", "2025-02"]
    assert parse_month_list(" ") is None
