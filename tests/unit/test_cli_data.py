"""`persona data generate | ingest | months` through the real Typer app (SQLite in tmp)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.settings import get_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    values = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/var/persona.db",
        "VAR_DIR": str(tmp_path / "var"),
        "PERSONA_CATALOG": str(REPO / "01_model" / "personas.yaml"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_generate_ingest_months_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    code, out, _ = run("data", "generate", "--n", "40", "--json")
    assert code == 0
    generated = json.loads(out)
    assert [(m["month"], m["scenario"]) for m in generated["months"]] == [
        ("2025-01", "stable"),
        ("2025-02", "stable"),
        ("2025-03", "spread"),
        ("2025-04", "stable"),
        ("2025-05", "stable"),
    ]
    folder = tmp_path / "var" / "data"
    assert len(list(folder.glob("survey_*.parquet"))) == 5
    code, out, err = run("data", "ingest", str(folder), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["ok"] and [f["rows_new"] for f in document["files"]] == [40] * 5
    code, out, _ = run("data", "ingest", str(folder), "--json")
    assert [f["already_ingested"] for f in json.loads(out)["files"]] == [True] * 5
    code, out, _ = run("data", "months", "--json")
    assert json.loads(out) == {
        "months": [{"month": f"2025-0{i}", "rows": 40} for i in range(1, 6)],
        "total_rows": 200,
    }
    code, _, err = run("data", "months")
    assert code == 0 and "5 month(s), 200 rows" in err


def test_generate_options(env: dict[str, str], tmp_path: Path) -> None:
    out_dir = tmp_path / "custom"
    code, out, _ = run(
        "data",
        "generate",
        "--out",
        str(out_dir),
        "--year",
        "2024",
        "--months",
        "2,4",
        "--n",
        "10",
        "--seed",
        "3",
        "--scenario-for",
        "2024-04=new_segment",
        "--format",
        "parquet",
        "--json",
    )
    assert code == 0
    months = json.loads(out)["months"]
    assert [(m["month"], m["scenario"]) for m in months] == [
        ("2024-02", "stable"),
        ("2024-04", "new_segment"),
    ]
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "survey_2024-02.parquet",
        "survey_2024-04.parquet",
        "truth_2024-02.csv",
        "truth_2024-04.csv",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario-for", "2025-03=chaos"], "expected YYYY-MM=SCENARIO"),
        (["--months", "0-3"], "within 1-12"),
        (["--format", "xlsx"], "expected csv, parquet or both"),
    ],
)
def test_generate_refuses_bad_options(env: dict[str, str], args: list[str], message: str) -> None:
    code, out, err = run("data", "generate", *args, "--json")
    assert code == 2
    assert message in json.loads(out)["error"] and message in err


def test_a_folder_with_one_bad_file_exits_2_and_writes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert run("data", "generate", "--n", "20", "--months", "1-2", "--format", "csv")[0] == 0
    folder = tmp_path / "var" / "data"
    bad = folder / "survey_2025-01b.csv"
    lines = (folder / "survey_2025-02.csv").read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[5], "oops", 1)
    bad.write_text("\n".join(lines).replace("2025-02", "2025-07") + "\n")
    code, out, err = run("data", "ingest", str(folder), "--json")
    assert code == 2
    document = json.loads(out)
    assert document["ok"] is False and document["type"] == "DataValidationError"
    assert [(Path(f["source"]).name, f["status"]) for f in document["files"]] == [
        ("survey_2025-01.csv", "rolled_back")
    ]
    assert document["failed"]["file"] == str(bad)
    assert document["failed"]["issues"] == [
        {"row": 4, "column": "x4", "message": "not a number: 'oops'"}
    ]
    assert document["failed"]["not_attempted"] == [str(folder / "survey_2025-02.csv")]
    assert "nothing written: the delivery of 3 file(s) is one transaction" in " ".join(err.split())
    assert json.loads(run("data", "months", "--json")[1])["months"] == []
    code, out, err = run("data", "ingest", str(folder))  # the table says what happened
    shown = " ".join((out + err).split())
    assert code == 2 and "rolled" in shown and "not read" in shown


def test_ingest_explicit_month_and_missing_paths(env: dict[str, str], tmp_path: Path) -> None:
    run("data", "generate", "--n", "5", "--months", "3", "--format", "csv")
    csv = tmp_path / "var" / "data" / "survey_2025-03.csv"
    code, out, _ = run("data", "ingest", str(csv), "--month", "2025-04", "--json")
    assert code == 2 and "does not match" in json.loads(out)["failed"]["error"]
    code, out, _ = run("data", "ingest", str(csv), "--month", "2025/03", "--json")
    failed = json.loads(out)["failed"]  # checked at the edge, reported as the first file's
    assert code == 2 and failed["type"] == "MonthError" and "'2025/03'" in failed["error"]
    assert failed["file"] == str(csv) and json.loads(out)["files"] == []
    code, out, _ = run("data", "ingest", str(csv), "--month", "2025-03", "--json")
    assert code == 0 and json.loads(out)["files"][0]["rows_new"] == 5
    code, out, err = run("data", "ingest", str(tmp_path / "nowhere"), "--json")
    assert code == 2 and "no such file or folder" in json.loads(out)["error"]
    (tmp_path / "empty").mkdir()
    code, _, err = run("data", "ingest", str(tmp_path / "empty"))
    assert code == 2 and "no survey_*.csv" in " ".join(err.split())


def test_bad_database_url_exits_2_naming_the_variable(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "foo")
    get_settings.cache_clear()
    code, _, err = run("data", "months")
    assert code == 2 and "DATABASE_URL" in err


def test_entry_point_scripts(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "var" / "data"
    generate = [
        sys.executable,
        str(REPO / "00_create_data" / "create_data.py"),
        "--n",
        "15",
        "--months",
        "1-2",
        "--out",
        str(out),
        "--json",
    ]
    done = subprocess.run(generate, capture_output=True, text=True, check=True)
    assert len(json.loads(done.stdout)["months"]) == 2
    ingest = [sys.executable, str(REPO / "00_create_data" / "ingest.py"), "--json"]
    done = subprocess.run(ingest, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert [f["rows_new"] for f in json.loads(done.stdout)["files"]] == [15, 15]
