"""The production stack in real containers, driven as docs/deployment.md tells an operator.

Needs a Docker engine with the compose v2 plugin and the images of `make images` (`make
test` sets both up: docker/engine.sh, docker/images.sh). The stack is brought up exactly
as the operator's page says: a `.env` made from `.env.example` (secrets and ports changed,
its COMPOSE_FILE / COMPOSE_PROFILES kept: the images built here and the GCS emulator),
`make up` / `make down` with that file (ENV_FILE), `docker compose run --rm cli persona
...` for the operator's CLI, the Mage trigger id found through Mage's API with its client
key. The project name is the test's own (COMPOSE_PROJECT_NAME in that .env) and every
port is a free one on 127.0.0.1. The images are those `make images` tagged with
PERSONA_VERSION (this process's, else .env.example's). Checks go through public interfaces
only: the API through nginx, MLflow REST, the GCS JSON API, PostgreSQL, Mage REST, the
CLI. The tests share one stack and run in file order; together they take about 15 minutes
here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import psycopg2
import pytest

from tests.e2e.bad_requests import CASES, SLOW, send, send_slowly, with_token
from tests.e2e.mage_harness import (
    MageApi,
    champion_version,
    free_ports,
    http,
    wait,
    wait_api_version,
)

pytestmark = [pytest.mark.containers, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PORTS = ("API_PORT", "POSTGRES_PORT", "GCS_EMULATOR_PORT", "MLFLOW_PORT", "MAGE_PORT")
LONG_RUNNING = ("postgres", "gcs", "mlflow", "governance", "mage", "api", "nginx")
# Every secret of the stack, and which long-running service may hold each (docs/security.md).
SECRETS = (
    "POSTGRES_PASSWORD", "PG_MLFLOW_PASSWORD", "PG_CYCLE_PASSWORD", "PG_GOVERNANCE_PASSWORD",
    "PG_GRAFANA_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_API_PASSWORD",
    "MLFLOW_PIPELINE_PASSWORD", "MLFLOW_GOVERNANCE_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", "GOVERNANCE_WEBHOOK_SECRET", "MAGE_ADMIN_PASSWORD",
    "MAGE_API_TOKEN", "GRAFANA_ADMIN_PASSWORD", "API_TOKEN",
)  # fmt: skip
HOLDS = {
    "api": {"API_TOKEN", "MLFLOW_API_PASSWORD"},
    "nginx": set(),
    "gcs": set(),
    "mlflow": {"PG_MLFLOW_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
               "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"},
    "governance": {"PG_GOVERNANCE_PASSWORD", "MLFLOW_GOVERNANCE_PASSWORD",
                   "GOVERNANCE_WEBHOOK_SECRET"},
    "mage": {"PG_CYCLE_PASSWORD", "MLFLOW_PIPELINE_PASSWORD", "MAGE_ADMIN_PASSWORD",
             "MAGE_API_TOKEN"},
    "postgres": {"POSTGRES_PASSWORD", "PG_MLFLOW_PASSWORD", "PG_CYCLE_PASSWORD",
                 "PG_GOVERNANCE_PASSWORD", "PG_GRAFANA_PASSWORD"},
}  # fmt: skip
# A champion moved in MLflow by a person (not through the platform) is in model_events
# within this (MLflow's webhook; the scheduled reconcile is GOVERNANCE_RECONCILE_INTERVAL_S).
RECORDED_WITHIN_S = 30.0
RECONCILE_S = 15  # the receiver's schedule here; a move while it was down: within this + boot
RECONCILED_WITHIN_S = RECONCILE_S + 120.0
PROMOTER = "alice"
MONTHS = ["2025-01", "2025-02", "2025-03"]
ROWS = 500
# Budgets on a 2-core machine under load (x4 headroom over what was measured here).
UP_TIMEOUT_S = float(os.environ.get("E2E_CONTAINERS_UP_TIMEOUT_S", "900"))
MAGE_RUN_TIMEOUT_S = float(os.environ.get("E2E_CONTAINERS_RUN_TIMEOUT_S", "600"))
API_VERSION_TIMEOUT_S = 120  # MODEL_RELOAD_INTERVAL_S=2 below
MLFLOW_DOWN_LOGGED_S = 120.0  # a failed reload (every 2 s) logged with MLflow stopped
# The bounds this test states: a killed process or container answers again within these.
BACK_AFTER_MASTER_KILL_S = 60.0
BACK_AFTER_NGINX_KILL_S = 30.0
BACK_AFTER_CONTAINER_KILL_S = 60.0
# `docker compose stop <service>`: each service exits by itself within Docker's default
# grace (10 s; exit code 137 = SIGKILLed after it). Measured 0.4-1.1 s each on this machine.
STOP_GRACE_S = 10.0
STOP_COMMAND_S = STOP_GRACE_S + 20  # + the compose CLI's own time under load
# Errors no service may log (gunicorn's control socket in an unwritable $HOME, a state
# folder it cannot write).
NO_LOG = ("Control server error", "Permission denied: '/")
CLIENT_TIMEOUT_S = 10  # nginx's client_header_timeout / client_body_timeout
SLOW_CLOSE_S = CLIENT_TIMEOUT_S + 20  # + margin


class Stack:
    """One operator's stack: its .env, `make` and `docker compose` with it, and its ports."""

    def __init__(self, env_file: Path, values: dict[str, str]) -> None:
        self.env_file, self.values = env_file, values
        keep = ("PATH", "HOME", "LANG", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR")
        # Only the .env decides (compose lets the shell's variables win over it).
        self.proc_env = {k: os.environ[k] for k in keep if k in os.environ}
        self.timings: dict[str, float] = {}

    def auth(self, user: str, password: str) -> dict[str, str]:
        """An HTTP basic-auth header for MLflow."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def admin(self) -> dict[str, str]:
        """MLflow's admin (the test reads the registry as it)."""
        return self.auth("admin", self.values["MLFLOW_ADMIN_PASSWORD"])

    def champion(self, alias: str = "champion") -> str:
        """The version `alias` points at in MLflow."""
        return champion_version(self.url("MLFLOW_PORT"), headers=self.admin, alias=alias)

    def champion_or_none(self, alias: str) -> str | None:
        try:
            return self.champion(alias)
        except KeyError:
            return None

    def port(self, name: str) -> int:
        return int(self.values[name])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def make(self, target: str, timeout: float = UP_TIMEOUT_S) -> float:
        """`make <target> ENV_FILE=<this .env>`; seconds taken (fails with the logs)."""
        start = time.monotonic()
        done = subprocess.run(
            ["make", "--no-print-directory", target, f"ENV_FILE={self.env_file}"],
            cwd=REPO,
            env=self.proc_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (
            f"make {target} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-3000:]}\n--- logs ---\n{self.logs()[-6000:]}"
        )
        return time.monotonic() - start

    def compose(
        self,
        *args: str,
        timeout: float = 300,
        check: bool = True,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose --env-file <this .env> <args>` (the .env picks files and profile)."""
        done = subprocess.run(
            ["docker", "compose", "--env-file", str(self.env_file), *args],
            cwd=REPO,
            env={**self.proc_env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert done.returncode == 0, (
                f"compose {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def logs(self, *services: str, tail: int = 60) -> str:
        done = self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False)
        return done.stdout + done.stderr

    def cli(self, *args: str, data: Path | None = None, timeout: float = 600) -> Any:
        """`docker compose run --rm cli persona <args> --json`; the parsed JSON."""
        mount = ["-v", f"{data}:/data"] if data else []
        done = self.compose(
            "run", "--rm", "-T", *mount, "cli", "persona", *args, "--json",
            timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"persona {args}: {done.stdout[-800:]} {done.stderr[-1500:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port("POSTGRES_PORT"),
            user=self.values["POSTGRES_USER"],
            password=self.values["POSTGRES_PASSWORD"],
            dbname=self.values["POSTGRES_SURVEY_DB"],
            connect_timeout=5,
        )
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall()
        finally:
            conn.close()

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).stdout.split()
        assert len(ids) == 1, (service, ids)
        return ids[0]

    def api_ready_within(self, budget_s: float) -> tuple[float, list[int]]:
        """Seconds until /ready answers 200 through nginx; the statuses seen on the way."""
        start, seen = time.monotonic(), []
        while time.monotonic() - start < budget_s:
            status, body = http(
                "GET", f"{self.url('API_PORT')}/ready", timeout=5, unreachable_as_zero=True
            )
            seen.append(int(status))
            if status == 200:
                return time.monotonic() - start, seen
            if status:  # anything nginx answers in between is JSON
                assert isinstance(body, dict), (status, body)
            time.sleep(0.2)
        raise AssertionError(f"the API did not answer within {budget_s}s: {sorted(set(seen))}")


def _env_file(folder: Path, tag: str) -> tuple[Path, dict[str, str]]:
    """The operator's step: copy .env.example, set the secrets and (here) free ports."""
    from cryptography.fernet import Fernet

    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    keys = folder / "secrets"
    keys.mkdir()
    # Every secret distinct (the environment checks look for each value).
    secrets = {name: f"{name.lower()[:6]}{uuid.uuid4().hex}" for name in SECRETS}
    secrets["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    changes = {
        **{k: str(v) for k, v in ports.items()},
        **secrets,
        "GCP_KEY_DIR": str(keys),
        # STACK_AUTO_PROMOTE stays false (production): a promoter moves the champion.
        "MODEL_RELOAD_INTERVAL_S": "2",
        "GOVERNANCE_RECONCILE_INTERVAL_S": str(RECONCILE_S),
        "API_WORKERS": "1",
        "MLFLOW_WORKERS": "1",
    }
    if os.environ.get("PERSONA_VERSION"):
        changes["PERSONA_VERSION"] = os.environ["PERSONA_VERSION"]
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, _ = line.partition("=")
        lines.append(f"{name}={changes.pop(name)}" if sep and name in changes else line)
    lines += [f"{k}={v}" for k, v in changes.items()]
    # A project of its own.
    lines += [f"COMPOSE_PROJECT_NAME=personaops-e2e-{tag}"]
    path = folder / ".env"
    path.write_text("\n".join(lines) + "\n")
    values = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name] = value
    return path, values


def _engine_ready() -> None:
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, (
        "no Docker engine answers: `make test` starts one (bash docker/engine.sh install &&"
        f" bash docker/engine.sh start), then `make images`.\n{info.stderr[-500:]}"
    )
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
    )
    assert plugin.returncode == 0, "no compose v2 plugin: bash docker/engine.sh install"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    _engine_ready()
    tag = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="persona-containers-"))
    env_file, values = _env_file(folder, tag)
    handle = Stack(env_file, values)
    project = values["COMPOSE_PROJECT_NAME"]
    try:
        yield handle
    finally:
        print("\ncontainer e2e timings (s):", json.dumps(handle.timings, indent=1))
        # --profile replaces the .env's COMPOSE_PROFILES: name both.
        down = handle.compose(
            "--profile", "local", "--profile", "cli", "down", "-v", "--remove-orphans",
            "--timeout", "30", timeout=300, check=False,
        )  # fmt: skip
        label = f"label=com.docker.compose.project={project}"
        left = subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", label],
            capture_output=True, text=True, timeout=60,
        ).stdout.split()  # fmt: skip
        volumes = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", label],
            capture_output=True, text=True, timeout=60,
        ).stdout.split()  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
        assert down.returncode == 0, f"docker compose down -v failed:\n{down.stderr[-2000:]}"
        assert not left, f"docker compose down -v left containers: {left}"
        assert not volumes, f"docker compose down -v left volumes: {volumes}"


def _data(stack: Stack, name: str) -> Path:
    """A host folder the cli container (uid 10001) can write, for `-v <folder>:/data`."""
    folder = stack.env_file.parent / name
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def _predict(stack: Stack) -> tuple[int, Any]:
    rows = [{f"x{i}": 0.0 for i in range(1, 11)}, {f"x{i}": 3.0 for i in range(1, 11)}]
    return http(
        "POST",
        f"{stack.url('API_PORT')}/predict",
        {"instances": rows},
        headers={"Authorization": f"Bearer {stack.values['API_TOKEN']}"},
    )


def test_up_on_an_empty_stack_then_first_champion_by_the_init_service(stack: Stack) -> None:
    stack.timings["make up (cold)"] = stack.make("up")
    running = stack.compose("ps", "--services", "--status", "running").stdout.split()
    assert sorted(running) == sorted(LONG_RUNNING), running
    boot = stack.logs("bootstrap")
    assert "no survey month is ingested" in boot, boot[-2000:]
    setup = stack.logs("mlflow-setup")
    assert "persona-api: " in setup and "webhook " in setup, setup[-2000:]
    assert http("GET", f"{stack.url('API_PORT')}/health")[0] == 200
    status, body = http("GET", f"{stack.url('API_PORT')}/ready")
    assert status == 503 and isinstance(body, dict), body

    # The operator's CLI against the stack: generate and ingest three months.
    data = _data(stack, "data")
    stack.cli("data", "generate", "--out", "/data", "--months", f"1-{len(MONTHS)}",
              "--n", str(ROWS), "--format", "csv", data=data)  # fmt: skip
    ingested = stack.cli("data", "ingest", "/data", data=data)
    assert sum(f["rows_new"] for f in ingested["files"]) == ROWS * len(MONTHS), ingested
    # `make up` again: the init service registers v1 as champion; the API picks it up.
    stack.timings["make up (bootstrap)"] = stack.make("up")
    assert stack.champion() == "1"
    wait_api_version(stack.url("API_PORT"), "1", API_VERSION_TIMEOUT_S)
    stack.make("up")  # idempotent: still v1, nothing registered twice
    assert stack.champion() == "1"


def test_months_through_the_mage_trigger(stack: Stack) -> None:
    v = stack.values
    # The trigger id, as docs/deployment.md finds it: Mage's API with its client key.
    mage = MageApi(
        stack.url("MAGE_PORT"), v["MAGE_ADMIN_EMAIL"], v["MAGE_ADMIN_PASSWORD"], v["MAGE_API_TOKEN"]
    )
    assert "stall watchdog on" in stack.logs("mage", tail=400)
    for month in MONTHS:
        start = time.monotonic()
        run = mage.run_month(month, MAGE_RUN_TIMEOUT_S, poll_s=3, log_tail=stack.logs)
        stack.timings[f"mage {month}"] = time.monotonic() - start
        assert run["status"] == "completed", (month, run, stack.logs("mage")[-4000:])
    stack.timings["mage re-fires by the server"] = mage.refires["server"]
    assert mage.refires["harness"] == 0, "a stalled run was left to the test to fire again"

    # MLflow: March retrained v2, which waits as challenger for a person (production:
    # no auto-promotion); the artifacts are in the emulated GCS bucket.
    assert stack.champion() == "1" and stack.champion("challenger") == "2"
    url = f"{stack.url('MLFLOW_PORT')}/api/2.0/mlflow/model-versions/search?filter="
    status, body = http("GET", url + quote("name='persona-classifier'"), headers=stack.admin)
    assert status == 200, body
    assert sorted(x["version"] for x in body["model_versions"]) == ["1", "2"]
    assert _model_blobs(stack) >= 2

    # PostgreSQL: every month labelled once per version, one monitoring run per month.
    labels = stack.sql(
        "SELECT survey_month, model_version, count(*), count(DISTINCT response_id)"
        " FROM persona_assignments GROUP BY 1, 2"
    )
    assert {m for m, *_ in labels} == set(MONTHS)
    assert all(n == distinct == ROWS for _, _, n, distinct in labels), labels
    checks = stack.sql("SELECT survey_month, count(*) FROM monitoring_runs GROUP BY 1")
    assert dict(checks) == dict.fromkeys(MONTHS, 1)
    assert (
        dict(stack.sql("SELECT survey_month, decision FROM monitoring_runs"))["2025-03"]
        == "retrain"
    )


def _inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return dict(json.loads(out)[0])


def _held(text: str, values: dict[str, str]) -> set[str]:
    """The names of the secrets whose value appears in `text`."""
    return {name for name in SECRETS if values[name] in text}


def test_each_service_holds_only_its_own_secrets(stack: Stack) -> None:
    """Issue 22: environments (docker inspect) and every process's command line (ps)."""
    script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done; true"
    for service, allowed in HOLDS.items():
        info = _inspect(stack.container(service))
        env = "\n".join(info["Config"]["Env"])
        extra = _held(env, stack.values) - allowed
        assert not extra, f"{service} holds secrets of other services: {sorted(extra)}"
        argv = " ".join([info["Path"], *info["Args"], *(info["Config"]["Cmd"] or [])])
        processes = stack.compose("exec", "-T", service, "sh", "-c", script).stdout
        assert processes.strip(), service
        on_argv = _held(argv + "\n" + processes, stack.values)
        assert not on_argv, f"{service}: a secret on a command line: {sorted(on_argv)}"
    api_env = _inspect(stack.container("api"))["Config"]["Env"]
    names = {line.partition("=")[0] for line in api_env}
    assert "DATABASE_URL" not in names and not any("postgres" in e for e in api_env), api_env


def test_mlflow_needs_a_user_and_the_api_identity_only_reads(stack: Stack) -> None:
    mlflow, v = stack.url("MLFLOW_PORT"), stack.values
    get = f"{mlflow}/api/2.0/mlflow/registered-models/get?name=persona-classifier"
    assert http("GET", get)[0] == 401  # anonymous
    api = stack.auth("persona-api", v["MLFLOW_API_PASSWORD"])
    assert http("GET", get, headers=api)[0] == 200
    alias = f"{mlflow}/api/2.0/mlflow/registered-models/alias"
    move = {"name": "persona-classifier", "alias": "champion", "version": "2"}
    status, body = http("POST", alias, move, headers=api)
    assert status == 403, (status, body)
    assert stack.champion() == "1"
    # PostgreSQL: one role per service, none for the API; no service but postgres uses
    # the superuser.
    roles = {r for (r,) in stack.sql("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_'")}
    expected = {v["POSTGRES_USER"], "persona_owner", "persona_mlflow", "persona_cycle",
                "persona_governance", "persona_grafana"}  # fmt: skip
    assert roles == expected, roles


def test_a_champion_moved_in_mlflow_by_a_promoter_is_recorded(stack: Stack) -> None:
    """A person with MANAGE moves @champion through MLflow's REST API, not the platform."""
    v = stack.values
    password = uuid.uuid4().hex
    admin = {
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": v["MLFLOW_ADMIN_PASSWORD"],
    }
    added = stack.compose(
        "run", "--rm", "-T", "-e", "MLFLOW_TRACKING_USERNAME", "-e", "MLFLOW_TRACKING_PASSWORD",
        "cli", "persona", "governance", "add-person", PROMOTER, "--role", "promoter", "--json",
        env=admin, stdin=password + "\n",
    )  # fmt: skip
    assert json.loads(added.stdout.strip().splitlines()[-1])["permission"] == "MANAGE"
    promoter = stack.auth(PROMOTER, password)
    took, rows = _move_champion(stack, promoter, "2", RECORDED_WITHIN_S)
    stack.timings["external champion move recorded (webhook)"] = took
    assert rows == [("promote", "1", "2", "external")], (rows, stack.logs("governance"))
    # The receiver cleared challenger (it has MANAGE); the API follows the alias.
    deadline = time.monotonic() + 60
    while stack.champion_or_none("challenger") is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stack.champion_or_none("challenger") is None, stack.logs("governance")
    model = wait_api_version(stack.url("API_PORT"), "2", API_VERSION_TIMEOUT_S)
    assert model["tags"]["training_months"] == "2025-01,2025-02,2025-03"
    status, body = _predict(stack)
    assert status == 200 and str(body["model_version"]) == "2", body

    # The receiver down: the move (v2 -> v1) is recorded by its scheduled reconcile once it
    # is back; then back to v2 with the receiver up.
    stack.compose("stop", "governance")
    took, rows = _move_champion(stack, promoter, "1", 5.0)
    assert rows == [], rows  # nothing records it while the receiver is down
    stack.compose("start", "governance")
    took, rows = _move_champion(stack, promoter, None, RECONCILED_WITHIN_S)
    stack.timings["external champion move recorded (receiver was down)"] = took
    assert rows == [("promote", "2", "1", "external")], (rows, stack.logs("governance"))
    # Back to v2 with the receiver up. The reconcile that recorded the last move may still
    # be gating and relabelling (seconds to a minute here): a webhook waits for it, so this
    # bound is the reconcile's, not the webhook's (measured above).
    took, rows = _move_champion(stack, promoter, "2", RECONCILED_WITHIN_S)
    stack.timings["external champion move recorded (right after another)"] = took
    assert rows == [("promote", "1", "2", "external")], (rows, stack.logs("governance"))
    wait_api_version(stack.url("API_PORT"), "2", API_VERSION_TIMEOUT_S)


def test_a_forged_webhook_is_refused_and_changes_nothing(stack: Stack) -> None:
    events = stack.sql("SELECT count(*) FROM model_events")
    body = json.dumps({"entity": "model_version_alias", "action": "created", "data": {
        "name": "persona-classifier", "alias": "champion", "version": "1"}})  # fmt: skip
    forged = (
        "import sys, time, urllib.request, urllib.error\n"
        "req = urllib.request.Request('http://127.0.0.1:8010/webhook', data=sys.argv[1].encode(),"
        " headers={'Content-Type': 'application/json', 'X-MLflow-Signature': 'v1,Zm9yZ2Vk',"
        " 'X-MLflow-Delivery-Id': 'forged', 'X-MLflow-Timestamp': str(int(time.time()))})\n"
        "try:\n    print(urllib.request.urlopen(req, timeout=10).status)\n"
        "except urllib.error.HTTPError as exc:\n    print(exc.code)\n"
    )
    done = stack.compose("exec", "-T", "governance", "python", "-c", forged, body)
    assert done.stdout.strip() == "401", done.stdout
    assert stack.sql("SELECT count(*) FROM model_events") == events
    assert stack.champion() == "2"


def _move_champion(
    stack: Stack, who: dict[str, str], version: str | None, within_s: float
) -> tuple[float, list[tuple[Any, ...]]]:
    """Move `champion` in MLflow as `who` (None: no move), then wait for new model_events.

    Returns:
        Seconds until a new event row appeared (or `within_s`), and the new rows.
    """
    before = stack.sql("SELECT coalesce(max(event_id), 0) FROM model_events")[0][0]
    start = time.monotonic()
    if version is not None:
        alias = f"{stack.url('MLFLOW_PORT')}/api/2.0/mlflow/registered-models/alias"
        move = {"name": "persona-classifier", "alias": "champion", "version": version}
        status, body = http("POST", alias, move, headers=who)
        assert status == 200, body
    rows: list[tuple[Any, ...]] = []
    while not rows and time.monotonic() - start < within_s:
        rows = stack.sql(
            "SELECT event, from_version, to_version, actor FROM model_events"
            f" WHERE event_id > {int(before)} ORDER BY event_id"
        )
        time.sleep(0.2)
    return time.monotonic() - start, rows


def _model_blobs(stack: Stack) -> int:
    from google.cloud import storage

    with mock.patch.dict(os.environ, {"STORAGE_EMULATOR_HOST": stack.url("GCS_EMULATOR_PORT")}):
        client = storage.Client(project="e2e")
        blobs = [b.name for b in client.list_blobs(stack.values["GCS_BUCKET"], prefix="mlflow/")]
    return sum(name.endswith("persona_model.json") for name in blobs)


def _bad(case_status: int, answer: Any) -> str | None:
    """Why an answer to a bad request is wrong (None: a JSON 4xx as the table says)."""
    if answer.status != case_status:
        return f"status {answer.status}, expected {case_status}: {answer.body[:120]!r}"
    if "json" not in answer.content_type:
        return f"content type {answer.content_type!r}: {answer.body[:120]!r}"
    try:
        body = answer.json()
    except ValueError:
        return f"not JSON: {answer.body[:120]!r}"
    return None if isinstance(body, dict) and "error" in body else f"no error key: {body}"


def test_bad_requests_through_nginx_get_json_4xx(stack: Stack) -> None:
    host, port = "127.0.0.1", stack.port("API_PORT")
    with ThreadPoolExecutor(8) as pool:
        slow = [pool.submit(send_slowly, host, port, c.raw, SLOW_CLOSE_S + 30) for c in SLOW]
        token = stack.values["API_TOKEN"]
        answers = list(pool.map(lambda c: send(host, port, with_token(c.raw, token)), CASES))
        slow_answers = [f.result() for f in slow]
    wrong = {c.name: why for c, a in zip(CASES, answers, strict=True) if (why := _bad(c.status, a))}
    assert len(CASES) >= 30 and not wrong, wrong
    for case, answer in zip(SLOW, slow_answers, strict=True):
        # nginx ends a stalled request by closing it once its 10 s timeout has passed, with
        # no byte sent (it cannot send a 408 there: bad_requests.py).
        assert answer.status == case.status == 0, (case.name, answer)
        assert CLIENT_TIMEOUT_S - 1 <= answer.seconds < SLOW_CLOSE_S, (case.name, answer)
    assert _predict(stack)[0] == 200  # the API still serves


def test_api_keeps_serving_while_mlflow_is_stopped(stack: Stack) -> None:
    start = time.monotonic()
    stack.compose("stop", "mlflow")
    stack.timings["stop mlflow"] = time.monotonic() - start
    try:
        # A reload (every 2 s) failed: the API logged it.
        wait(
            lambda: "cannot read the model alias" in stack.logs("api", tail=200),
            MLFLOW_DOWN_LOGGED_S, "the API to log that it cannot read the model alias", step=2,
        )  # fmt: skip
        status, body = http("GET", f"{stack.url('API_PORT')}/ready")
        assert status == 200, body
        status, body = _predict(stack)
        assert status == 200 and str(body["model_version"]) == "2", body
        assert "cannot read the model alias" in stack.logs("api", tail=200)
    finally:
        stack.make("up")


def test_postgres_restarted_mid_cycle_then_the_rerun_is_clean(stack: Stack) -> None:
    data = _data(stack, "data-june")
    stack.cli("data", "generate", "--out", "/data", "--months", "6", "--n", str(ROWS),
              "--format", "csv", "--scenario-for", "2025-06=shift", data=data)  # fmt: skip
    stack.cli("data", "ingest", "/data", data=data)
    cmd = ["docker", "compose", "--env-file", str(stack.env_file), "run", "--rm", "-T", "cli",
           "persona", "run-month", "--month", "2025-06", "--json"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=stack.proc_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        labeled = 0
        while not labeled and proc.poll() is None and time.monotonic() < deadline:
            labeled = stack.sql(
                "SELECT count(*) FROM persona_assignments WHERE survey_month = '2025-06'"
            )[0][0]
            time.sleep(0.1)
        assert labeled and proc.poll() is None, "the run ended before the fault was injected"
        start = time.monotonic()
        stack.compose("stop", "postgres")  # mid-cycle: the labels are written
        stack.timings["stop postgres"] = time.monotonic() - start
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        stack.make("up")
    assert proc.returncode != 0, f"run-month survived a PostgreSQL outage: {out}"
    assert "Traceback" not in err, err[-2000:]

    stack.cli("run-month", "--month", "2025-06")
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
    assert http("GET", f"{stack.url('API_PORT')}/ready")[0] == 200


def _child_of_init(stack: Stack, service: str) -> int:
    """The pid (in the container) of the process docker-init runs: the service's own."""
    out = stack.compose("exec", "-T", service, "cat", "/proc/1/task/1/children").stdout
    (pid,) = out.split()
    return int(pid)


def test_killed_master_nginx_or_container_comes_back(stack: Stack) -> None:
    master = _child_of_init(stack, "api")
    # The exec's own shell may die with the container (exit 137): not checked.
    stack.compose("exec", "-T", "api", "sh", "-c", f"kill -KILL {master}", check=False)
    back, seen = stack.api_ready_within(BACK_AFTER_MASTER_KILL_S)
    stack.timings["api back after gunicorn master SIGKILL"] = back
    assert all(s in (0, 200, 502, 503) for s in seen), seen

    nginx = _child_of_init(stack, "nginx")
    stack.compose("exec", "-T", "nginx", "sh", "-c", f"kill -KILL {nginx}", check=False)
    back, _ = stack.api_ready_within(BACK_AFTER_NGINX_KILL_S)
    stack.timings["api back after nginx master SIGKILL"] = back

    # The whole container: its init (pid 1 of its namespace) killed from the host.
    pid = int(
        subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", stack.container("api")],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
    )  # fmt: skip
    os.kill(pid, signal.SIGKILL)
    back, _ = stack.api_ready_within(BACK_AFTER_CONTAINER_KILL_S)
    stack.timings["api back after its container was killed"] = back
    status, body = _predict(stack)
    champion = stack.champion()
    assert status == 200 and str(body["model_version"]) == champion, body


def test_processes_run_as_non_root_and_ports_are_on_loopback(stack: Stack) -> None:
    script = "for s in /proc/[0-9]*/status; do grep -h -E '^(Name|Uid):' $s; done; true"
    names: dict[str, set[str]] = {}
    for service in LONG_RUNNING:
        out = stack.compose("exec", "-T", service, "sh", "-c", script).stdout.split("\n")
        pairs = [(out[i], out[i + 1]) for i in range(0, len(out) - 1, 2)]
        names[service] = {n.split()[1] for n, _ in pairs}
        uids = {u.split()[1] for _, u in pairs}  # real uid of each process
        assert "0" not in uids, (service, pairs)
    assert "nginx" in names["nginx"]
    assert not names["api"] & {"nginx"}, names["api"]  # the API container is gunicorn only
    listing = stack.compose("ps", "--format", "json").stdout.splitlines()
    rows = [json.loads(line) for line in listing if line.strip()]
    for container in rows:
        for port in container.get("Publishers") or []:
            if port.get("PublishedPort"):
                assert port["URL"] == "127.0.0.1", (container["Service"], port)


def test_stack_refuses_default_secrets_unless_local_trial(stack: Stack) -> None:
    """The one-shot `secrets-check` service every secret-holding service waits for."""
    weak = {"POSTGRES_PASSWORD": "change-me", "API_TOKEN": ""}
    refused = stack.compose("run", "--rm", "--no-deps", "secrets-check", env=weak, check=False)
    assert refused.returncode == 2, refused.stderr
    assert "refusing to start with unsafe secrets" in refused.stderr
    assert "POSTGRES_PASSWORD is a default value" in refused.stderr
    assert "API_TOKEN is empty" in refused.stderr
    assert "change-me" not in refused.stderr.split("secrets:", 1)[1]  # names, never values
    trial = stack.compose(
        "run", "--rm", "--no-deps", "secrets-check",
        env={**weak, "STACK_LOCAL_TRIAL": "true"}, check=False,
    )  # fmt: skip
    assert trial.returncode == 0, trial.stderr
    assert "WARNING local trial" in trial.stderr


def test_services_stop_on_sigterm_and_down_up_keeps_everything(stack: Stack) -> None:
    champion = stack.champion()
    rows = stack.sql("SELECT survey_month, model_version, count(*) FROM persona_assignments"
                     " GROUP BY 1, 2 ORDER BY 1, 2")  # fmt: skip
    checks = stack.sql("SELECT survey_month, count(*) FROM monitoring_runs GROUP BY 1 ORDER BY 1")
    blobs = _model_blobs(stack)
    everything = stack.compose("logs", "--no-color", timeout=120).stdout
    assert not [line for line in everything.splitlines() if any(e in line for e in NO_LOG)]
    # The clients first, PostgreSQL last.
    for service in ("nginx", "api", "governance", "mage", "mlflow", "gcs", "postgres"):
        container = stack.container(service)
        start = time.monotonic()
        stack.compose("stop", service, timeout=STOP_COMMAND_S + 60)
        stack.timings[f"stop {service}"] = took = time.monotonic() - start
        state = _inspect(container)["State"]
        # It exited by itself (0, or 143: ended by the SIGTERM), not SIGKILLed after the grace.
        assert state["ExitCode"] in (0, 143) and not state["OOMKilled"], (service, state)
        assert took < STOP_COMMAND_S, (service, took)
    stack.timings["make down"] = stack.make("down")
    assert not stack.compose("ps", "-q").stdout.split()
    stack.timings["make up (volumes kept)"] = stack.make("up")

    assert stack.champion() == champion
    wait_api_version(stack.url("API_PORT"), champion, API_VERSION_TIMEOUT_S)
    status, body = _predict(stack)
    assert status == 200 and str(body["model_version"]) == champion, body
    assert stack.sql("SELECT survey_month, model_version, count(*) FROM persona_assignments"
                     " GROUP BY 1, 2 ORDER BY 1, 2") == rows  # fmt: skip
    assert (
        stack.sql("SELECT survey_month, count(*) FROM monitoring_runs GROUP BY 1 ORDER BY 1")
        == checks
    )
    # The artifacts outlived the emulator's container: the CLI loads the champion from them.
    assert _model_blobs(stack) == blobs
    labelled = stack.cli("label", "--month", "2025-03")
    assert str(labelled.get("model_version", champion)) == champion, labelled


# The API image's budget (issue 27: serving needs numpy, Flask, gunicorn and MLflow's client).
API_IMAGE_MAX_BYTES = 300_000_000


def test_the_api_image_serves_and_holds_nothing_else(stack: Stack) -> None:
    image = f"personaops-api:{stack.values['PERSONA_VERSION']}"
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", image))
    assert size <= API_IMAGE_MAX_BYTES, f"{image}: {size / 1e6:.0f} MB"
    absent = ("pandas", "scikit-learn", "scipy", "evidently", "psycopg2-binary",
              "google-cloud-storage")  # fmt: skip
    probe = (
        "from importlib.metadata import distributions as d; "
        f"print(sorted({{x.metadata['Name'] for x in d()}} & {set(absent)!r}))"
    )
    out = stack.compose("exec", "-T", "api", "python", "-c", probe).stdout.strip()
    assert out == "[]", out


def _docker(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, (args, done.stderr[-2000:])
    return done.stdout.strip()


def test_a_rebuild_leaves_none_of_our_images_dangling(tmp_path: Path) -> None:
    """An image a rebuild replaced (untagged, with the images' label) is removed by images.sh."""
    run = uuid.uuid4().hex[:8]
    label, tag = f"org.personaops.e2e={run}", f"e2e-{run}"
    base = os.environ.get("LOCAL_BASE_IMAGE", "personaops-debian-base:bookworm")
    build = ["build", "--label", label, "-t", f"personaops-e2e-old:{tag}", "-"]
    first: list[str] = []
    try:
        for i in range(2):  # the second build takes the tag: the first is dangling
            _docker(*build, stdin=f"FROM {base}\nLABEL nonce={run}-{i}\n")
            first.append(_docker("image", "inspect", "-f", "{{.Id}}", f"personaops-e2e-old:{tag}"))
        dangling = ["images", "-q", "--no-trunc", "-f", "dangling=true", "-f", f"label={label}"]
        assert first[0] in _docker(*dangling).split()
        env = {
            **os.environ, "IMAGES": "nginx", "IMAGE_LABEL": label, "PERSONA_VERSION": tag,
            "IMAGE_WHEELHOUSE": "", "VAR_DIR": str(tmp_path), "DOCKER_BUILDKIT": "0",
        }  # fmt: skip
        done = subprocess.run(
            ["bash", "docker/images.sh"], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=1200, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "removed our dangling images" in done.stdout
        assert not _docker(*dangling), "images.sh left dangling images with its label"
        assert _docker("image", "inspect", "-f", "{{.Id}}", f"personaops-nginx:{tag}")
    finally:
        subprocess.run(
            ["docker", "rmi", "-f", f"personaops-e2e-old:{tag}", f"personaops-nginx:{tag}",
             *first],
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip
