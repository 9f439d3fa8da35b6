"""`DATABASE_URL` as people type it: `postgresql://` works against the real PostgreSQL, and
a URL that cannot be used is one line and exit 2 from the CLI, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from persona.store.engine import make_engine
from tests.faults import CATALOG, run_cli

pytestmark = pytest.mark.postgres


def test_a_postgresql_url_ingests_through_the_cli(pg_url: str, tmp_path: Path) -> None:
    typed = pg_url.replace("postgresql+psycopg2://", "postgresql://")
    env = {"DATABASE_URL": typed, "VAR_DIR": str(tmp_path / "var"),
           "PERSONA_CATALOG": str(CATALOG)}  # fmt: skip
    data = tmp_path / "data"
    code, _, err, _ = run_cli(
        ["data", "generate", "--out", str(data), "--months", "1", "--n", "60", "--format", "csv"],
        env,
        tmp_path,
    )
    assert code == 0, err
    code, _, err, _ = run_cli(["data", "ingest", str(data), "--json"], env, tmp_path)
    assert code == 0 and "Traceback" not in err, err[-2000:]
    engine = make_engine(typed)
    try:
        assert engine.dialect.driver == "psycopg2"
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM survey_responses")).scalar()
    finally:
        engine.dispose()
    assert rows == 60


@pytest.mark.parametrize(
    "url",
    ["mysql://u@127.0.0.1/db", "postgresql://u:secret@127.0.0.1:port/db", "postgres://u@h"],
)
def test_an_unusable_url_is_one_line_and_exit_2(url: str, tmp_path: Path) -> None:
    code, out, err, _ = run_cli(["data", "ingest", str(tmp_path)], {"DATABASE_URL": url}, tmp_path)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid setting: DATABASE_URL"), err
    assert "secret" not in err and "Traceback" not in err + out


@pytest.mark.parametrize("name", ["DATABASE_URL", "MLFLOW_TRACKING_URI"])
def test_a_sqlite_file_in_a_missing_folder_is_one_line_and_exit_2(
    name: str, tmp_path: Path
) -> None:
    missing = tmp_path / "typo" / "sub"
    env = {name: f"sqlite:///{missing}/store.db", "VAR_DIR": str(tmp_path / "var")}
    code, out, err, _ = run_cli(["data", "ingest", str(tmp_path)], env, tmp_path)
    assert code == 2, (out, err)
    assert err.strip().splitlines() == [
        f"error: invalid setting: {name}: the folder {missing} of the SQLite file does not"
        f" exist: create it, or put the file under VAR_DIR ({tmp_path / 'var'}), the only"
        f" folder the platform creates (got 'sqlite:///{missing}/store.db')"
    ], err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "var").exists()


def test_the_embedded_default_creates_its_own_folder(tmp_path: Path) -> None:
    """A fresh clone (no var/): the default DATABASE_URL, sqlite:///var/persona.db, works."""
    env = {"PERSONA_CATALOG": str(CATALOG)}
    args = ["data", "generate", "--out", "in", "--months", "1", "--n", "60", "--format", "csv"]
    code, _, err, _ = run_cli(args, env, tmp_path)
    assert code == 0, err
    assert not (tmp_path / "var").exists()
    code, _, err, _ = run_cli(["data", "ingest", "in", "--json"], env, tmp_path)
    assert code == 0, err
    engine = make_engine(f"sqlite:///{tmp_path}/var/persona.db")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM survey_responses")).scalar() == 60
    finally:
        engine.dispose()
