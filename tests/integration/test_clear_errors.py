"""Bad settings and broken inputs end in one clear message, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from persona.catalog import parse_catalog
from persona.errors import CatalogError, IngestError, StoreError
from persona.features import FEATURE_NAMES
from persona.store import events
from persona.survey_file import read_csv_file
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"API_PORT": "abc"}, "API_PORT"),
        ({"GUNICORN_WORKER_CLASS": "eventlet"}, "GUNICORN_WORKER_CLASS"),
        ({"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_THREADS": "x"}, "GUNICORN_THREADS"),
    ],
)
def test_gunicorn_refuses_a_bad_setting_with_one_line(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [str(REPO / ".venv/bin/gunicorn"), "-c", str(REPO / "03_deployment/gunicorn.conf.py")],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_event_write_failure_is_a_store_error(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/no-schema.db")  # tables never created
    with pytest.raises(StoreError, match="cannot record the promote"):
        event = events.ModelEvent("persona-classifier", "promote", "1", "2", "test", "me")
        events.record_event(engine, event)


def test_unreadable_survey_file_is_an_ingest_error(tmp_path: Path) -> None:
    folder = tmp_path / "survey_2025-01.csv"
    folder.mkdir()  # a folder where a file should be: reading it fails with an OSError
    with pytest.raises(IngestError, match="cannot read the file"):
        read_csv_file(folder)


def test_catalog_with_a_huge_integer_is_rejected_precisely() -> None:
    centroid: list[float | int] = [0.0] * len(FEATURE_NAMES)
    centroid[2] = 10**400
    data = {"personas": [{"id": "p-one", "name": "P", "centroid": centroid}]}
    with pytest.raises(CatalogError, match="x3"):
        parse_catalog(data)
