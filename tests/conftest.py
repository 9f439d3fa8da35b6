"""Shared fixtures: isolated settings per test and real PostgreSQL databases.

PostgreSQL tests never skip: if the server is not reachable the fixture fails with a
message saying how to start it (`.ci/run` starts it in CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from persona.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "01_model" / "personas.yaml"
PG_ADMIN_DSN = os.environ.get(
    "TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_TEMPLATE = os.environ.get(
    "TEST_PG_URL_TEMPLATE", "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build settings isolated in `tmp_path` (SQLite store, local MLflow), ignoring `.env`."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "var_dir": tmp_path / "var",
            "database_url": f"sqlite:///{tmp_path}/var/persona.db",
            "mlflow_tracking_uri": f"sqlite:///{tmp_path}/var/mlflow.db",
            "mlflow_artifact_root": str(tmp_path / "var" / "mlartifacts"),
            "reports_dir": tmp_path / "var" / "reports",
            "persona_catalog": CATALOG,
        }
        values.update(overrides)
        return load_settings(_env_file=None, **values)

    return build


def _admin() -> Any:
    try:
        conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:  # pragma: no cover - environment failure
        pytest.fail(
            "PostgreSQL is not reachable at 127.0.0.1:5432 "
            f"({exc}); start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start",
            pytrace=False,
        )
    conn.autocommit = True
    return conn


@contextmanager
def fresh_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (its URL) for the `with` block; dropped after."""
    name = f"persona_test_{uuid.uuid4().hex[:12]}"
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL_TEMPLATE.format(db=name)
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    with fresh_database() as url:
        yield url


# The files that take longest, longest first. Minutes of one worker at load 15-25
# (2026-12-07): test_containers 49, test_fresh_machine 35 (`make demo` in the bare container,
# 26 of it pip installing the wheels), test_mage 12-30 (each `persona` CLI call of its replay
# takes 1-2 min at that load), test_spark 6, test_browser 6, test_spark_native 4.
# `make test` runs with `--dist loadfile --no-loadscope-reorder`: xdist gives each worker one
# file of this order, then the next file to whichever worker is nearly done (longest first,
# so the two workers finish together); by default xdist would start the files with the most
# tests first and leave these for the end. test_fresh_machine is second so that it runs
# beside test_containers from the start, not after test_mage and the rest.
SLOWEST_FIRST = (
    "tests/e2e/test_containers.py",
    "tests/e2e/test_fresh_machine.py",
    "tests/e2e/test_mage.py",
    "tests/e2e/test_browser.py",
    "tests/integration/test_spark.py",
    "tests/integration/test_spark_native.py",
    "tests/e2e/test_mage_trial.py",
    "tests/integration/test_review_cli.py",
    "tests/integration/test_flows.py",
    "tests/integration/test_reliability.py",
    "tests/integration/test_cli_json.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the slowest files first (a stable sort: the rest keep their collection order)."""
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
