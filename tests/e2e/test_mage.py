"""The Mage project for real: `mage run` headless and the API trigger of a running server.

Runs Mage from .venv-mage against a fresh PostgreSQL database (DATABASE_URL) and a
throw-away MLflow sqlite store; the blocks call the app env's `persona` CLI. Mage's own
state (its sqlite DB, block outputs) lives in tmp (MAGE_DATA_DIR).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from persona import registry
from persona.catalog import load_catalog
from persona.settings import Settings
from persona.store import schema, surveys
from persona.store.engine import open_store
from persona.synth import default_year, generate_month

REPO = Path(__file__).resolve().parents[2]
MAGE = REPO / ".venv-mage" / "bin" / "mage"
PROJECT = REPO / "02_pipeline" / "persona_pipeline"
START = REPO / "02_pipeline" / "start_mage.sh"
TOKEN = "e2e_token_4f1c"
N = 200

pytestmark = [pytest.mark.mage, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def world(make_settings: Callable[..., Settings], pg_url: str, tmp_path: Path) -> Iterator[Any]:
    """Jan-May 2025 ingested into a fresh PostgreSQL database, v1 bootstrapped on January."""
    settings = make_settings(database_url=pg_url)
    catalog = load_catalog(settings.persona_catalog)
    engine = open_store(pg_url)
    for plan in default_year(2025, range(1, 6), N):
        frame, _ = generate_month(catalog, plan.month, plan.n, plan.scenario, seed=11)
        surveys.ingest_frame(engine, frame, plan.month, f"synth-{plan.month}")
    registry.bootstrap(settings, engine)
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "VAR_DIR": str(settings.var_dir),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
        "REPORTS_DIR": str(settings.reports_dir),
        "PERSONA_CATALOG": str(settings.persona_catalog),
        "MAGE_DATA_DIR": str(tmp_path / "mage_data"),
        "MAGE_API_TOKEN": TOKEN,
        "PERSONA_BIN": str(REPO / ".venv" / "bin" / "persona"),
    }
    yield settings, engine, env
    engine.dispose()


def _labels(engine: Any, month: str, version: str) -> int:
    t = schema.persona_assignments.c
    with engine.connect() as conn:
        query = select(func.count()).where(t.survey_month == month, t.model_version == version)
        return int(conn.execute(query).scalar())


def _runs(engine: Any, month: str) -> list[tuple[str, str]]:
    t = schema.monitoring_runs.c
    with engine.connect() as conn:
        rows = conn.execute(select(t.model_version, t.decision).where(t.survey_month == month))
        return [(str(v), str(d)) for v, d in rows]


def _mage_run(env: dict[str, str], pipeline: str, variables: dict[str, str]) -> None:
    cmd = [str(MAGE), "run", str(PROJECT), pipeline, "--runtime-vars", json.dumps(variables)]
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Pipeline run completed" in proc.stdout + proc.stderr


def test_mage_run_headless(world: Any) -> None:
    settings, engine, env = world
    _mage_run(env, "monthly_persona_cycle", {"month": "2025-03"})
    assert _runs(engine, "2025-03") == [("1", "retrain")]
    assert registry.alias_version(settings, registry.CHAMPION) == "2"
    assert _labels(engine, "2025-03", "2") == N
    _mage_run(env, "batch_labeling", {"month": "2025-04"})
    assert _labels(engine, "2025-04", "2") == N
    assert sorted(v["version"] for v in registry.list_versions(settings)) == ["1", "2"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and (int(fields[2]) == pgid or int(fields[3]) == pgid):
            pids.append(int(entry.name))
    return pids


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class MageDb:
    """Read-only view of the running server's own database (runs, block runs, triggers)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # tables not migrated yet
        finally:
            conn.close()

    def api_trigger(self, pipeline: str) -> tuple[int, str] | None:
        rows = self.query(
            "SELECT id, token FROM pipeline_schedule WHERE pipeline_uuid = ? AND name = 'api'",
            pipeline,
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def run_status(self, run_id: int) -> str | None:
        rows = self.query("SELECT status FROM pipeline_run WHERE id = ?", run_id)
        return str(rows[0][0]).lower() if rows else None

    def block_statuses(self, run_id: int) -> dict[str, str]:
        rows = self.query(
            "SELECT block_uuid, status FROM block_run WHERE pipeline_run_id = ?", run_id
        )
        return {str(b): str(s).lower() for b, s in rows}


def _fire(base: str, schedule_id: int, month: str, db: MageDb) -> dict[str, str]:
    url = f"{base}/api/pipeline_schedules/{schedule_id}/pipeline_runs/{TOKEN}"
    body = {"pipeline_run": {"variables": {"month": month}}}
    resp = requests.post(url, json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    run_id = int(resp.json()["pipeline_run"]["id"])
    done = ("completed", "failed", "cancelled")
    status = _wait(
        lambda: (db.run_status(run_id) or "") in done and db.run_status(run_id), 240, month
    )
    blocks = db.block_statuses(run_id)
    assert status == "completed", blocks
    return blocks


def test_api_trigger_chooses_the_branch(world: Any, tmp_path: Path) -> None:
    settings, engine, env = world
    port = _free_port()
    # A faster scheduler tick than the default 10 s keeps the test short.
    env = {**env, "MAGE_PORT": str(port), "SCHEDULER_TRIGGER_INTERVAL": "2"}
    log = (tmp_path / "mage.log").open("w")
    server = subprocess.Popen(
        ["bash", str(START)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    pgid = server.pid
    base = f"http://127.0.0.1:{port}"
    db = MageDb(Path(env["MAGE_DATA_DIR"]) / PROJECT.name / "mage-ai.db")
    try:
        trigger = _wait(lambda: db.api_trigger("monthly_persona_cycle"), 120, "API trigger")
        assert trigger[1] == TOKEN  # the token came from MAGE_API_TOKEN, not from git

        def up() -> bool:
            try:
                return requests.get(f"{base}/", timeout=5).status_code < 500
            except requests.RequestException:
                return False

        _wait(up, 120, "mage start")
        feb = _fire(base, trigger[0], "2025-02", db)
        assert feb["check_drift"] == "completed"
        assert feb["label_with_champion"] == "completed"
        assert feb["retrain_challenger"] == "condition_failed"
        assert _labels(engine, "2025-02", "1") == N
        march = _fire(base, trigger[0], "2025-03", db)
        assert march["retrain_challenger"] == "completed"
        assert march["promote_challenger"] == "completed"
        assert march["label_after_retrain"] == "completed"
        assert march["label_with_champion"] == "condition_failed"
        assert registry.alias_version(settings, registry.CHAMPION) == "2"
        assert _labels(engine, "2025-03", "2") == N
        bad = requests.post(
            f"{base}/api/pipeline_schedules/{trigger[0]}/pipeline_runs/wrong_token", json={},
            timeout=30,
        )  # fmt: skip
        assert "pipeline_run" not in bad.json()
    finally:
        os.killpg(pgid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            server.wait(timeout=30)
        _stop_group(pgid)
        log.close()
    assert not _group_pids(pgid), (tmp_path / "mage.log").read_text()[-3000:]


def _stop_group(pgid: int) -> None:
    """Give the group 20 s to exit after SIGTERM, then SIGKILL what is left."""
    deadline = time.monotonic() + 20
    while _group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _group_pids(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(2)
