"""The compose stack in real containers: `docker compose up --wait`, Jan-Mar through Mage.

Needs a Docker engine with the compose v2 plugin and the images of `make images` (`make
test` sets both up: docker/engine.sh, docker/images.sh). The stack is docker-compose.yml
with docker/compose.local.yml (PostgreSQL and the GCS emulator built from Debian/PyPI
packages, every image on the local Debian base), under a project name of its own, with
free ports published on 127.0.0.1 only. The test talks to the containers through those
ports alone (the `persona` CLI of .venv, MLflow REST, the GCS JSON API, Mage REST, the
API); `docker compose exec` is used only to read each container's user id.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.e2e.mage_harness import (
    MageApi,
    champion_version,
    free_ports,
    http,
    seed_months,
    wait_api_version,
)

pytestmark = [pytest.mark.containers, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ["docker-compose.yml", "docker/compose.local.yml"]
SERVICES = ("postgres", "gcs", "mlflow", "mage", "api")
MONTHS = ["2025-01", "2025-02", "2025-03"]
ROWS = 500
# Budgets on a 2-core machine under load (x4 headroom over what was measured here).
UP_TIMEOUT_S = float(os.environ.get("E2E_CONTAINERS_UP_TIMEOUT_S", "900"))
MAGE_RUN_TIMEOUT_S = float(os.environ.get("E2E_CONTAINERS_RUN_TIMEOUT_S", "600"))
API_VERSION_TIMEOUT_S = 240  # the API container checks the alias every 30 s (default)


class Compose:
    """`docker compose` on one private project (name, env file, ports)."""

    def __init__(self, project: str, env: dict[str, str], ports: dict[str, int]) -> None:
        self.project, self.env, self.ports = project, env, ports
        self.timings: dict[str, float] = {}

    def compose_cmd(self) -> list[str]:
        """``docker compose`` for this project, its files and the local profile."""
        files = [a for f in COMPOSE_FILES for a in ("-f", f)]
        return ["docker", "compose", "-p", self.project, *files, "--profile", "local"]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        files = [a for f in COMPOSE_FILES for a in ("-f", f)]
        cmd = [*self.compose_cmd(), *args]
        done = subprocess.run(
            cmd, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            logs = subprocess.run(
                ["docker", "compose", "-p", self.project, *files, "logs", "--tail", "40"],
                cwd=REPO,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            raise AssertionError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                f"{done.stderr[-3000:]}\n--- logs ---\n{logs.stdout[-6000:]}"
            )
        return done.stdout

    def up(self, *services: str) -> float:
        start = time.monotonic()
        self.run("up", "--detach", "--no-build", "--wait", *services, timeout=UP_TIMEOUT_S)
        return time.monotonic() - start

    def persona(self, *args: str) -> Any:
        pg = self.ports["postgres"]
        env = {
            **self.env,
            "DATABASE_URL": f"postgresql+psycopg2://persona:{self.env['POSTGRES_PASSWORD']}"
            f"@127.0.0.1:{pg}/{self.env['POSTGRES_SURVEY_DB']}",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{self.ports['mlflow']}",
            "AUTO_PROMOTE": "true",
        }
        done = subprocess.run(
            [str(REPO / ".venv/bin/persona"), *args, "--json"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"persona {args}: {done.stdout[-800:]} {done.stderr[-1500:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def champion(self) -> str:
        return champion_version(self.url("mlflow"))

    def wait_api_version(self, version: str) -> dict[str, Any]:
        return wait_api_version(self.url("api"), version, API_VERSION_TIMEOUT_S, poll_s=2)


def _engine_ready() -> None:
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, (
        "no Docker engine answers: `make test` starts one (bash docker/engine.sh install &&"
        f" bash docker/engine.sh start), then `make images`.\n{info.stderr[-500:]}"
    )
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    assert plugin.returncode == 0, "no compose v2 plugin: bash docker/engine.sh install"


@pytest.fixture(scope="module")
def stack() -> Iterator[Compose]:
    _engine_ready()
    tag = uuid.uuid4().hex[:8]
    project = f"personaops-e2e-{tag}"
    keys = Path(tempfile.mkdtemp(prefix="persona-keys-"))
    var_dir = Path(tempfile.mkdtemp(prefix="persona-containers-"))
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "POSTGRES_USER": "persona",
        "POSTGRES_PASSWORD": f"pw_{tag}",
        "POSTGRES_SURVEY_DB": "survey",
        "POSTGRES_MLFLOW_DB": "mlflow",
        "POSTGRES_PORT": str(ports["postgres"]),
        "GCS_EMULATOR_PORT": str(ports["gcs"]),
        "MLFLOW_PORT": str(ports["mlflow"]),
        "API_PORT": str(ports["api"]),
        "MAGE_PORT": str(ports["mage"]),
        "MAGE_API_TOKEN": f"e2e_{tag}",
        "MAGE_ADMIN_EMAIL": "admin@admin.com",
        "MAGE_ADMIN_PASSWORD": f"mage_{tag}",
        "GRAFANA_ADMIN_PASSWORD": f"gf_{tag}",
        "API_TOKEN": f"api_{tag}",
        "STACK_LOCAL_TRIAL": "false",  # the secrets above are not defaults: no trial needed
        "STACK_AUTO_PROMOTE": "true",  # production default is false; the test wants v2 live
        "STORAGE_EMULATOR_HOST": "http://gcs:4443",
        "GCP_KEY_DIR": str(keys),
        "API_WORKERS": "1",
        "MLFLOW_WORKERS": "1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    # Every other variable the compose file reads: .env.example's defaults (never the
    # developer's .env: `--env-file` is not used and the project's .env is not read for
    # interpolation when every variable is set here).
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.isupper() and not name.startswith("#") and name not in env:
            env[name] = value
    handle = Compose(project, env, ports)
    try:
        yield handle
    finally:
        down = subprocess.run(
            ["docker", "compose", "-p", project]
            + [a for f in COMPOSE_FILES for a in ("-f", f)]
            + ["--profile", "local", "down", "-v", "--remove-orphans", "--timeout", "30"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        label = f"label=com.docker.compose.project={project}"
        left = subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", label], capture_output=True, text=True
        ).stdout.split()
        volumes = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", label], capture_output=True, text=True
        ).stdout.split()
        shutil.rmtree(var_dir, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)
        assert down.returncode == 0, f"docker compose down -v failed:\n{down.stderr[-2000:]}"
        assert not left, f"docker compose down -v left containers: {left}"
        assert not volumes, f"docker compose down -v left volumes: {volumes}"


def test_stack_comes_up_healthy_and_retrains_through_mage(stack: Compose) -> None:
    # The API is healthy only once a champion exists (/ready): bring up what it needs,
    # register v1 through the published ports, then the whole stack.
    first = stack.up("postgres", "gcs", "mlflow", "mage")
    seed_months(stack.persona, Path(stack.env["VAR_DIR"]) / "data", MONTHS, ROWS)
    second = stack.up()
    print(f"\ncompose up --wait: {first:.0f} s to healthy (4 services), then {second:.0f} s (api)")
    stack.wait_api_version("1")

    # Mage: the API trigger for each month (auth on), then follow the run.
    env = stack.env
    mage = MageApi(
        stack.url("mage"),
        env["MAGE_ADMIN_EMAIL"],
        env["MAGE_ADMIN_PASSWORD"],
        env["MAGE_API_TOKEN"],
    )
    for month in MONTHS:
        run = mage.run_month(month, MAGE_RUN_TIMEOUT_S, poll_s=3)
        assert run["status"] == "completed", (
            month,
            run,
            stack.run("logs", "--tail", "60", "mage", check=False)[-4000:],
        )

    # MLflow: March retrained and promoted; artifacts live in the emulated GCS bucket.
    assert stack.champion() == "2"
    status, body = http(
        "GET",
        f"{stack.url('mlflow')}/api/2.0/mlflow/model-versions/search"
        "?filter=name%3D%27persona-classifier%27",
    )
    assert status == 200, body
    assert sorted(v["version"] for v in body["model_versions"]) == ["1", "2"]
    from google.cloud import storage

    with mock.patch.dict(os.environ, {"STORAGE_EMULATOR_HOST": stack.url("gcs")}):
        client = storage.Client(project="e2e")
        blobs = [b.name for b in client.list_blobs(stack.env["GCS_BUCKET"], prefix="mlflow/")]
    assert sum(name.endswith("persona_model.json") for name in blobs) >= 2, blobs

    # The API container serves v2; a prediction through the published port.
    model = stack.wait_api_version("2")
    assert model["tags"]["training_months"] == "2025-01,2025-02,2025-03"
    status, body = http(
        "POST",
        f"{stack.url('api')}/predict",
        {"instances": [{f"x{i}": 0.0 for i in range(1, 11)}, {f"x{i}": 3.0 for i in range(1, 11)}]},
        headers={"Authorization": f"Bearer {stack.env['API_TOKEN']}"},
    )
    assert status == 200, body
    assert str(body["model_version"]) == "2" and len(body["predictions"]) == 2


def test_every_container_runs_as_non_root_and_publishes_on_loopback(stack: Compose) -> None:
    running = stack.run("ps", "--services", "--status", "running").split()
    assert sorted(running) == sorted(SERVICES), running
    for service in SERVICES:
        uid = stack.run("exec", "-T", service, "id", "-u").strip()
        assert uid.isdigit() and int(uid) != 0, (service, uid)
    rows = [json.loads(line) for line in stack.run("ps", "--format", "json").splitlines() if line]
    for container in rows:
        for port in container.get("Publishers") or []:
            if port.get("PublishedPort"):
                assert port["URL"] == "127.0.0.1", (container["Service"], port)


def test_stack_refuses_default_secrets_unless_local_trial(stack: Compose) -> None:
    """The one-shot `secrets-check` service every secret-holding service waits for."""
    weak = {**stack.env, "POSTGRES_PASSWORD": "change-me", "API_TOKEN": ""}
    refused = subprocess.run(
        [*stack.compose_cmd(), "run", "--rm", "--no-deps", "secrets-check"],
        cwd=REPO,
        env=weak,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2, refused.stderr
    assert "refusing to start with unsafe secrets" in refused.stderr
    assert "POSTGRES_PASSWORD is a default value" in refused.stderr
    assert "API_TOKEN is empty" in refused.stderr
    assert "change-me" not in refused.stderr.split("secrets:", 1)[1]  # names, never values
    trial = subprocess.run(
        [*stack.compose_cmd(), "run", "--rm", "--no-deps", "secrets-check"],
        cwd=REPO,
        env={**weak, "STACK_LOCAL_TRIAL": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trial.returncode == 0, trial.stderr
    assert "WARNING local trial" in trial.stderr
