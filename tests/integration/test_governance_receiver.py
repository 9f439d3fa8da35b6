"""Governance reacts to registry events, on an MLflow server with basic-auth (real servers).

An `mlflow server --app-name basic-auth` (SQLite backend and auth database in tmp) and the
governance receiver (`persona governance serve`, gunicorn) run on free ports. As MLflow's
admin, `persona governance setup-mlflow` makes the platform's identities and the webhook.
Then:

- an anonymous request gets 401; the API's read-only identity cannot move an alias, set a
  tag or register a version (403), only read;
- a promoter (`persona governance add-person`) moves ``champion`` with a plain REST call,
  never calling the platform: the webhook makes the receiver record it within
  `WEBHOOK_BOUND_S`;
- a forged webhook (bad signature, or a replayed old one) is refused with 401 and changes
  nothing;
- with the receiver down, a move is recorded by the receiver's scheduled reconcile once it
  is back, within `SCHEDULE_BOUND_S` of its start.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from persona import registry
from persona.catalog import load_catalog
from persona.governance.signature import sign
from persona.mlflow_env import mlflow_environ
from persona.months import Window, parse_window
from persona.settings import Settings
from persona.store import events, survey_ingest
from persona.store.engine import open_store
from persona.synth import default_year, generate_month
from tests.conftest import REPO
from tests.integration.servers import BIN, free_port, start, stop, wait_http

pytestmark = pytest.mark.slow
N = 200
ADMIN = ("admin", f"admin-{uuid.uuid4().hex}")
PASSWORDS = {
    "MLFLOW_API_PASSWORD": f"api-{uuid.uuid4().hex}",
    "MLFLOW_PIPELINE_PASSWORD": f"pipeline-{uuid.uuid4().hex}",
    "MLFLOW_GOVERNANCE_PASSWORD": f"governance-{uuid.uuid4().hex}",
}
PROMOTER = ("alice", f"alice-{uuid.uuid4().hex}")
SECRET = f"hook-{uuid.uuid4().hex}"
# MLflow delivers the webhook at once, on a thread of its own; the receiver then reads the
# alias and writes the row (measured: printed by the test). The bounds allow a machine 4x
# slower than a busy one.
WEBHOOK_BOUND_S = 30.0
SCHEDULE_INTERVAL_S = 2.0
SCHEDULE_BOUND_S = 30.0
BUDGET_S = 120.0


@dataclass
class Stack:
    mlflow: str
    mlflow_log: Path
    tmp: Path
    settings: Settings  # the pipeline's (the cycle's) settings
    receiver_port: int

    def env(self, user: str | None, password: str | None, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "DATABASE_URL", "GOVERNANCE_"))
        }
        env.update({
            "MLFLOW_TRACKING_URI": self.mlflow,
            "DATABASE_URL": self.settings.database_url,
            "MODEL_NAME": self.settings.model_name,
            "PERSONA_CATALOG": str(self.settings.persona_catalog),
            "VAR_DIR": str(self.tmp / "var"),
            "REPORTS_DIR": str(self.tmp / "var" / "reports"),
            "GOVERNANCE_HOST": "127.0.0.1",
            "GOVERNANCE_PORT": str(self.receiver_port),
            "GOVERNANCE_WEBHOOK_URL": f"http://127.0.0.1:{self.receiver_port}/webhook",
            "GOVERNANCE_WEBHOOK_SECRET": SECRET,
            **extra,
        })  # fmt: skip
        if user is not None and password is not None:
            env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = user, password
        return env

    def rest(self, method: str, path: str, auth: tuple[str, str] | None, **kw: Any) -> Any:
        return requests.request(
            method, f"{self.mlflow}/api/2.0/mlflow/{path}", auth=auth, timeout=30, **kw
        )


def _persona(stack: Stack, args: list[str], env: dict[str, str], stdin: str = "") -> Any:
    done = subprocess.run(
        [str(BIN / "persona"), *args, "--json"], env=env, cwd=stack.tmp, input=stdin,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _wait(predicate: Callable[[], Any], what: str, budget: float = BUDGET_S) -> Any:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {budget}s waiting for {what}")


@pytest.fixture
def stack(tmp_path: Path, make_settings: Callable[..., Settings]) -> Iterator[Stack]:
    port = free_port()
    ini = (REPO / "docker/mlflow/basic_auth.ini").read_text()
    ini = ini.replace("sqlite:////app/var/basic_auth.db", f"sqlite:///{tmp_path}/auth.db")
    (tmp_path / "basic_auth.ini").write_text(ini)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        # The receiver is on a private address over http (inside a compose network too).
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
        "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # The backend store from the environment: no DSN on the command line.
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",
    })  # fmt: skip
    args = [
        str(BIN / "mlflow"), "server", "--app-name", "basic-auth",
        "--artifacts-destination", str(tmp_path / "artifacts"), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
    ]  # fmt: skip
    log = tmp_path / "mlflow-server.log"
    proc = start(args, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, log)
        settings = make_settings(
            mlflow_tracking_uri=url,
            mlflow_tracking_username="persona-pipeline",
            mlflow_tracking_password=PASSWORDS["MLFLOW_PIPELINE_PASSWORD"],
            auto_promote=False,
        )
        yield Stack(url, log, tmp_path, settings, free_port())
    finally:
        stop(proc)


@pytest.fixture
def pipeline_identity(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test is the process edge of its in-process calls: MLflow gets the pipeline's
    identity from the environment (as `persona.mlflow_env` gives it), undone after."""
    for name, value in mlflow_environ(stack.settings).items():
        monkeypatch.setenv(name, value)


def _receiver(stack: Stack, interval_s: float, name: str) -> Any:
    env = stack.env(
        "persona-governance",
        PASSWORDS["MLFLOW_GOVERNANCE_PASSWORD"],
        GOVERNANCE_RECONCILE_INTERVAL_S=str(interval_s),
    )
    log = stack.tmp / f"receiver-{name}.log"
    proc = start([str(BIN / "persona"), "governance", "serve"], env, log)
    url = f"http://127.0.0.1:{stack.receiver_port}"
    try:
        wait_http(f"{url}/health", proc, log, timeout=120)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def _last(url: str) -> dict[str, Any] | None:
    """The receiver's last finished reconcile (None until one has finished)."""
    last: dict[str, Any] | None = requests.get(f"{url}/health", timeout=10).json()["last"]
    return last


def _external(stack: Stack) -> list[tuple[Any, ...]]:
    engine = open_store(stack.settings.database_url)
    try:
        rows = events.list_events(engine, stack.settings.model_name)
    finally:
        engine.dispose()
    return [(r.from_version, r.to_version) for r in rows if r.actor == "external"]


def _move(stack: Stack, auth: tuple[str, str] | None, version: str) -> Any:
    body = {"name": stack.settings.model_name, "alias": "champion", "version": version}
    return stack.rest("POST", "registered-models/alias", auth, json=body)


def _pipeline_cycle(stack: Stack) -> None:
    """As the pipeline: three months ingested, v1 bootstrapped, a challenger v2 trained."""
    settings = stack.settings
    engine = open_store(settings.database_url)
    try:
        catalog = load_catalog(settings.persona_catalog)
        for plan in default_year(2025, range(1, 4), N):
            frame, _ = generate_month(catalog, plan.month, plan.n, plan.scenario, seed=3)
            survey_ingest.ingest_frame(engine, frame, plan.month, f"synth-{plan.month}")
        registry.bootstrap(settings, engine)
        window = parse_window("2025-02,2025-03") or Window(())
        trained = registry.train_challenger(settings, engine, window, "test", True)
    finally:
        engine.dispose()
    assert trained.summary.version == "2"
    assert registry.alias_version(settings, registry.CHALLENGER) == "2"


def test_governance_reacts_to_registry_events(stack: Stack, pipeline_identity: None) -> None:
    name = stack.settings.model_name
    # 1. Nobody anonymous: 401.
    assert stack.rest("GET", "registered-models/search", None).status_code == 401
    # 2. The admin sets up the identities and the webhook; a rerun changes nothing new.
    admin_env = stack.env(*ADMIN, **PASSWORDS)
    made = _persona(stack, ["governance", "setup-mlflow"], admin_env)
    assert made["grants"] == {
        "persona-api": "READ", "persona-pipeline": "EDIT", "persona-governance": "MANAGE"
    }  # fmt: skip
    again = _persona(stack, ["governance", "setup-mlflow"], admin_env)
    assert again["webhook_id"] == made["webhook_id"] and again["webhook"] == "updated"
    assert set(again["users"].values()) == {"updated"}
    person = _persona(
        stack, ["governance", "add-person", PROMOTER[0], "--role", "promoter"], admin_env,
        stdin=PROMOTER[1] + "\n",
    )  # fmt: skip
    assert person == {"user": "alice", "state": "created", "permission": "MANAGE"}
    # 3. The pipeline registers v1 (champion) and v2 (challenger), as a cycle does.
    _pipeline_cycle(stack)
    # 4. The API's identity reads, and cannot write.
    api = ("persona-api", PASSWORDS["MLFLOW_API_PASSWORD"])
    alias = stack.rest(
        "GET", "registered-models/alias", api, params={"name": name, "alias": "champion"}
    )
    assert alias.status_code == 200 and alias.json()["model_version"]["version"] == "1"
    assert _move(stack, api, "2").status_code == 403
    tag = {"name": name, "version": "1", "key": "k", "value": "v"}
    assert stack.rest("POST", "model-versions/set-tag", api, json=tag).status_code == 403
    source = alias.json()["model_version"]["source"]
    version = {"name": name, "source": source}
    assert stack.rest("POST", "model-versions/create", api, json=version).status_code == 403
    gone = {"name": name, "alias": "challenger"}
    assert stack.rest("DELETE", "registered-models/alias", api, json=gone).status_code == 403

    # 5. Receiver up (webhooks only). A promoter moves champion to v2 by a plain REST call.
    proc, url = _receiver(stack, 0, "webhook")
    try:
        moved_at = time.monotonic()
        assert _move(stack, PROMOTER, "2").status_code == 200
        _wait(lambda: _external(stack) == [("1", "2")], "the webhook's record", WEBHOOK_BOUND_S)
        took = time.monotonic() - moved_at
        last = _wait(lambda: _last(url), "the reconcile to finish (gates, tags)")
        assert last["trigger"] == "webhook" and last["result"]["moved"], last
        print(f"webhook: recorded {took:.2f} s after the move")
        assert registry.alias_version(stack.settings, registry.CHALLENGER) is None  # cleared
        tags = stack.rest("GET", "model-versions/get", api, params={"name": name, "version": "2"})
        found = {t["key"]: t["value"] for t in tags.json()["model_version"]["tags"]}
        assert json.loads(found["promoted"])["actor"] == "external"
        assert "external_gates" in found
    finally:
        stop(proc)

    # 6. Receiver down: a promoter moves champion back; MLflow's delivery fails.
    assert _move(stack, PROMOTER, "1").status_code == 200
    _wait(lambda: "Failed to send webhook" in stack.mlflow_log.read_text(), "MLflow to give up")
    assert _external(stack) == [("1", "2")]

    # 7. Back up without a schedule: a forged webhook is refused and changes nothing.
    proc, url = _receiver(stack, 0, "forged")
    try:
        body = json.dumps({
            "entity": "model_version_alias", "action": "created",
            "data": {"name": name, "alias": "champion", "version": "1"},
        }).encode()  # fmt: skip
        now = str(int(time.time()))
        forged = {
            "Content-Type": "application/json", "X-MLflow-Delivery-Id": "d1",
            "X-MLflow-Timestamp": now, "X-MLflow-Signature": sign("wrong-secret", "d1", now, body),
        }  # fmt: skip
        old = str(int(time.time()) - 3600)  # a genuine signature, replayed an hour later
        replayed = {**forged, "X-MLflow-Timestamp": old,
                    "X-MLflow-Signature": sign(SECRET, "d1", old, body)}  # fmt: skip
        unsigned = {"Content-Type": "application/json"}
        for headers in (forged, replayed, unsigned):
            answer = requests.post(f"{url}/webhook", data=body, headers=headers, timeout=10)
            assert answer.status_code == 401, answer.text
        assert requests.get(f"{url}/health", timeout=10).json()["last"] is None  # no reconcile
        assert _external(stack) == [("1", "2")]  # the move is still unrecorded
        v1 = stack.rest("GET", "model-versions/get", api, params={"name": name, "version": "1"})
        assert "external_gates" not in {t["key"] for t in v1.json()["model_version"]["tags"]}
    finally:
        stop(proc)

    # 8. Back up with its schedule: the scheduled reconcile records the move it missed.
    proc, url = _receiver(stack, SCHEDULE_INTERVAL_S, "schedule")
    started = time.monotonic()  # the receiver answers /health: its schedule runs
    try:
        _wait(
            lambda: _external(stack) == [("1", "2"), ("2", "1")], "the schedule", SCHEDULE_BOUND_S
        )
        print(f"schedule: recorded {time.monotonic() - started:.2f} s after the receiver was up")
        last = _wait(lambda: _last(url), "the scheduled reconcile to finish")
        assert last["trigger"] == "schedule", last  # no webhook was pending: MLflow gave up
    finally:
        stop(proc)
