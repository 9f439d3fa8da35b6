"""Full-stack end-to-end test: `make up`, Jan-May through Mage, faults, `make down`.

Everything runs for real as local processes (scripts/stack.sh): a private PostgreSQL
cluster (so restarting it never touches the machine's shared server), the GCS emulator,
the MLflow server (PostgreSQL backend, artifacts proxied to gs://), gunicorn and Mage.
Assertions go through public interfaces only: MLflow REST, the GCS bucket, the API,
PostgreSQL and the Mage REST API. The tests share one stack and run in file order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlparse

import psycopg2
import pytest

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "stack"))

import procs  # noqa: E402

from tests.e2e.mage_harness import (  # noqa: E402
    MageApi,
    champion_version,
    free_ports,
    http,
    seed_months,
    wait_api_version,
)

SERVICES = ("postgres", "gcs", "mlflow", "api", "mage")
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"]
ROWS = 500


class Stack:
    """Handle on a running stack: env, URLs, CLI and database helpers."""

    def __init__(self, env: dict[str, str], ports: dict[str, int]) -> None:
        self.env, self.ports = env, ports
        self.var_dir = Path(env["VAR_DIR"])
        self.api = f"http://127.0.0.1:{ports['api']}"
        self.mlflow = f"http://127.0.0.1:{ports['mlflow']}"
        self.mage = f"http://127.0.0.1:{ports['mage']}"
        self.client_env: dict[str, str] = {}

    def sh(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "scripts/stack.sh", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def persona(self, *args: str, timeout: float = 300) -> Any:
        env = {**self.env, **self.client_env}
        done = subprocess.run(
            [str(REPO / ".venv/bin/persona"), *args, "--json"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"persona {args}: {done.stdout[-800:]} {done.stderr[-1500:]}"
        # TODO(registry/cli): MLflow prints "View run ..." lines on stdout after a run, so
        # `--json` output is not a single document yet; the JSON is the last line.
        return json.loads(done.stdout.strip().splitlines()[-1])

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        url = urlparse(self.client_env["DATABASE_URL"].replace("+psycopg2", ""))
        conn = psycopg2.connect(
            host=url.hostname,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.path.lstrip("/"),
            connect_timeout=5,
        )
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall()
        finally:
            conn.close()

    def mlflow_get(self, path: str) -> Any:
        status, body = http("GET", f"{self.mlflow}/api/2.0/mlflow/{path}")
        assert status == 200, (path, body)
        return body

    def champion(self) -> str:
        return champion_version(self.mlflow)

    def wait_api_version(self, version: str, timeout: float = 60) -> dict[str, Any]:
        try:
            return wait_api_version(self.api, version, timeout)
        except AssertionError as exc:  # the services' own words, for the diagnosis
            logs = {name: self.log(name)[-2500:] for name in ("api", "mlflow")}
            told = f"api log:\n{logs['api']}\nmlflow log:\n{logs['mlflow']}"
            raise AssertionError(f"{exc}\n{told}") from exc

    def log(self, name: str) -> str:
        return (self.var_dir / "log" / f"{name}.log").read_text(errors="replace")


def _pids(stack: Stack) -> list[int]:
    """Every live process of the services `make up` recorded (group, session, children)."""
    records = [procs.read_record(stack.var_dir / "run", n) for n in SERVICES]
    return sorted({pid for r in records if r for pid in procs.members(r)})


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Private cluster files must be reachable by the `postgres` OS user: not under
    # pytest's 0700 tmp root.
    var_dir = Path(tempfile.mkdtemp(prefix="persona-stack-", dir="/tmp"))
    var_dir.chmod(0o755)
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "STACK_PG": "private",
        "POSTGRES_PORT": str(ports["postgres"]),
        "GCS_EMULATOR_PORT": str(ports["gcs"]),
        "MLFLOW_PORT": str(ports["mlflow"]),
        "API_PORT": str(ports["api"]),
        "MAGE_PORT": str(ports["mage"]),
        "POSTGRES_PASSWORD": f"pw_{tag}",
        "POSTGRES_SURVEY_DB": f"survey_{tag}",
        "POSTGRES_MLFLOW_DB": f"mlflow_{tag}",
        "MAGE_API_TOKEN": f"e2e_{tag}",
        "MAGE_ADMIN_EMAIL": "admin@admin.com",
        "MAGE_ADMIN_PASSWORD": f"mage_{tag}",
        "MODEL_RELOAD_INTERVAL_S": "2",
        "API_WORKERS": "1",
        "MLFLOW_WORKERS": "1",
        "STACK_AUTO_PROMOTE": "true",  # production default is false; the test wants v2 live
        "STACK_LOCAL_TRIAL": "true",  # no API token: the test posts without one
        "MLFLOW_REQUEST_MAX_RETRIES": "2",
    }
    handle = Stack(env, ports)
    try:
        up = subprocess.run(
            ["make", "-o", "venv", "-o", "venv-mage", "up"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=420,
            check=False,
        )
        assert up.returncode == 0, f"make up failed:\n{up.stdout}\n{up.stderr}"
        handle.client_env = json.loads(handle.sh("env", "--json").stdout)
        yield handle
    finally:
        started = _pids(handle)
        down = subprocess.run(
            ["make", "down"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        left = [
            p
            for p in started
            if Path(f"/proc/{p}").exists()
            and "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[-1][:3]
        ]
        shutil.rmtree(var_dir, ignore_errors=True)
        assert down.returncode == 0, f"make down failed:\n{down.stdout}\n{down.stderr}"
        assert started, "no process was recorded by make up"
        assert not left, f"make down left processes behind: {left}"


def test_stack_is_up_and_api_waits_for_a_champion(stack: Stack) -> None:
    rows = json.loads(stack.sh("status", "--json").stdout)
    assert all(r["running"] and r["ready"] for r in rows), rows
    assert http("GET", f"{stack.api}/health")[0] == 200
    status, body = http("GET", f"{stack.api}/ready")
    assert status == 503, body
    again = stack.sh("up")  # idempotent
    assert again.returncode == 0 and again.stdout.count("already running") == 5, again.stdout


def test_monthly_cycle_through_mage(stack: Stack) -> None:
    seed_months(stack.persona, stack.var_dir / "data", MONTHS, ROWS)
    stack.wait_api_version("1")
    env = stack.env
    mage = MageApi(
        stack.mage, env["MAGE_ADMIN_EMAIL"], env["MAGE_ADMIN_PASSWORD"], env["MAGE_API_TOKEN"]
    )
    for month in MONTHS:
        run = mage.run_month(month, 600, log_tail=lambda: stack.log("mage"))
        assert run["status"] == "completed", (month, run, stack.log("mage")[-3000:])
        if month == "2025-03":  # the spread month: retrain, gates, promotion
            champion = stack.champion()
            assert champion == "2"
            model = stack.wait_api_version(champion)
            assert model["tags"]["training_months"] == "2025-01,2025-02,2025-03"
    assert stack.champion() == "2", "April/May vs the new window must not retrain again"

    # MLflow REST: versions and their artifacts, stored in the (emulated) GCS bucket.
    versions = stack.mlflow_get("model-versions/search?filter=name%3D%27persona-classifier%27")
    found = sorted(
        (v["version"], {t["key"]: t["value"][:80] for t in v.get("tags", [])})
        for v in versions["model_versions"]
    )
    why = {
        "runs": stack.sql(
            "SELECT survey_month, model_version, reference_months, decision, action_taken"
            " FROM monitoring_runs ORDER BY run_id"
        ),
        "events": stack.sql("SELECT event, from_version, to_version, actor FROM model_events"),
        "versions": found,
    }
    assert [v for v, _ in found] == ["1", "2"], why
    from google.cloud import storage

    emulator = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{stack.ports['gcs']}"}
    with mock.patch.dict(os.environ, emulator):
        bucket = stack.client_env["GCS_BUCKET"]
        blobs = [b.name for b in storage.Client().list_blobs(bucket, prefix="mlflow/")]
    assert sum(name.endswith("persona_model.json") for name in blobs) >= 2, blobs
    assert not (stack.var_dir / "mlartifacts").exists()  # nothing written locally

    # API: serves the promoted model.
    status, body = http(
        "POST",
        f"{stack.api}/predict",
        {"instances": [{f"x{i}": 0.0 for i in range(1, 11)}, {f"x{i}": 3.0 for i in range(1, 11)}]},
    )
    assert status == 200, body
    assert str(body["model_version"]) == "2" and len(body["predictions"]) == 2

    # PostgreSQL: every month labeled once per model version, one monitoring run per month.
    labels = stack.sql(
        "SELECT survey_month, model_version, count(*), count(DISTINCT response_id)"
        " FROM persona_assignments GROUP BY 1, 2"
    )
    assert {m for m, *_ in labels} == set(MONTHS)
    assert all(n == distinct == ROWS for _, _, n, distinct in labels), labels
    checks = stack.sql("SELECT survey_month, count(*) FROM monitoring_runs GROUP BY 1")
    assert dict(checks) == dict.fromkeys(MONTHS, 1)
    decided = dict(stack.sql("SELECT survey_month, decision FROM monitoring_runs"))
    assert decided["2025-03"] == "retrain"


def test_api_keeps_serving_when_mlflow_is_down(stack: Stack) -> None:
    assert stack.sh("down", "mlflow").returncode == 0
    try:
        time.sleep(8)  # several reload intervals, each failing
        status, body = http("GET", f"{stack.api}/ready")
        assert status == 200, body
        status, body = http("POST", f"{stack.api}/predict", [{f"x{i}": 1.0 for i in range(1, 11)}])
        assert status == 200 and str(body["model_version"]) == "2", body
        log = stack.log("api")
        assert "cannot read the model alias" in log and "keeping the model in use" in log
    finally:
        up = stack.sh("up", "mlflow")
        assert up.returncode == 0, up.stderr


def test_postgres_restart_mid_cycle_then_rerun_is_clean(stack: Stack) -> None:
    data = stack.var_dir / "data-june"
    stack.persona(
        "data",
        "generate",
        "--out",
        str(data),
        "--months",
        "6",
        "--n",
        str(ROWS),
        "--format",
        "csv",
        "--scenario-for",
        "2025-06=shift",
    )
    stack.persona("data", "ingest", str(data))
    # MLflow's client retries a failing server with exponential backoff (7 retries, ~250 s
    # by default); a job runner gives it a small budget so an outage fails the run promptly.
    env = {
        **stack.env,
        **stack.client_env,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    }
    cmd = [str(REPO / ".venv/bin/persona"), "run-month", "--month", "2025-06", "--json"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        labeled = 0
        while not labeled and proc.poll() is None and time.monotonic() < deadline:
            labeled = stack.sql(
                "SELECT count(*) FROM persona_assignments WHERE survey_month = '2025-06'"
            )[0][0]
            time.sleep(0.1)
        assert labeled and proc.poll() is None, "the run ended before the fault was injected"
        assert stack.sh("down", "postgres").returncode == 0  # mid-cycle: labels written
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        up = stack.sh("up", "postgres")
        assert up.returncode == 0, up.stderr
    assert proc.returncode != 0, f"run-month survived a PostgreSQL outage: {out}"
    assert "Traceback" not in err, err[-2000:]

    rerun = stack.persona("run-month", "--month", "2025-06")
    assert rerun, rerun
    labels = stack.sql(
        "SELECT model_version, count(*), count(DISTINCT response_id)"
        " FROM persona_assignments WHERE survey_month = '2025-06' GROUP BY 1"
    )
    assert labels and all(n == d == ROWS for _, n, d in labels), labels
    checks = stack.sql(
        "SELECT model_version, reference_months, count(*) FROM monitoring_runs"
        " WHERE survey_month = '2025-06' GROUP BY 1, 2"
    )
    assert checks and all(n == 1 for *_, n in checks), checks
    versions = stack.mlflow_get("model-versions/search?filter=name%3D%27persona-classifier%27")
    keys = [
        (t.get("training_months"), t.get("data_hash"))
        for t in (
            {x["key"]: x["value"] for x in v.get("tags", [])} for v in versions["model_versions"]
        )
    ]
    assert len(keys) == len(set(keys)), f"a retrain was registered twice: {keys}"
    assert http("GET", f"{stack.api}/ready")[0] == 200
