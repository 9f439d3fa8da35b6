"""The API under a real gunicorn (2 workers) with models registered in a real MLflow store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, from_catalog
from persona.serving import launch
from persona.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "01_model" / "personas.yaml"
TOKEN = "s3cret-token"
MAX_RECORDS = 50
MAX_BODY = 20_000

pytestmark = pytest.mark.slow


def register_champion(settings: Settings, model: PersonaModel, tags: dict[str, str]) -> str:
    """Log `model` as a pyfunc, register it and point `champion` at it; return the version."""
    from persona.pyfunc import log_pyfunc
    from persona.registry.tracking import client, configure, parent_run
    from persona.registry.versions import register

    exp_id = configure(settings)
    mlc = client(settings)
    with tempfile.TemporaryDirectory() as tmp, parent_run(mlc, exp_id, "champion", {}) as run:
        info = log_pyfunc(mlc, run, model, tmp)

    def finish(mv: Any) -> None:
        mlc.set_registered_model_alias(settings.model_name, "champion", mv.version)

    mv = register(mlc, settings.model_name, info, run.info.run_id, tags, finish)
    return str(mv.version)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def record(values: Any) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, [float(v) for v in values], strict=True))


@dataclass
class Server:
    url: str
    settings: Settings
    proc: subprocess.Popen[bytes]
    log: Path
    v1: str

    def post(self, body: Any = None, token: str | None = TOKEN, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            kwargs["json"] = body
        return requests.post(self.url + "/predict", headers=headers, timeout=10, **kwargs)

    def get(self, path: str) -> Any:
        return requests.get(self.url + path, timeout=10)


def _workers_ready(workers: int) -> Callable[[int, bytes], bool]:
    """Every worker serves a model (each worker loads its own, in the background:
    `persona_model_info` in /metrics has one live series per worker pid)."""

    def ready(status: int, body: bytes) -> bool:
        live = {
            line.split('pid="', 1)[1].split('"', 1)[0]
            for line in body.decode(errors="replace").splitlines()
            if line.startswith("persona_model_info{") and line.endswith(" 1.0")
        }
        return status == 200 and len(live) >= workers

    return ready


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serving")
    env_values = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        "MLFLOW_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
        "PERSONA_CATALOG": str(CATALOG),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(free_port()),
        "API_WORKERS": "2",
        "API_TOKEN": TOKEN,
        "API_MAX_RECORDS": str(MAX_RECORDS),
        "API_MAX_BODY_BYTES": str(MAX_BODY),
        "MODEL_RELOAD_INTERVAL_S": "0.5",
        # Each worker takes requests only once its model is loaded (the tests count on it).
        "MODEL_STARTUP_WAIT_S": "25",
    }
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in env_values.items()})
    catalog = load_catalog(CATALOG)
    v1 = register_champion(settings, from_catalog(catalog, np.full(3, 10.0)), {"kind": "catalog"})
    # The API holds no database: no DATABASE_URL (nor any other store setting) reaches it.
    unwanted = ("PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in unwanted}
    env.update(env_values)
    url = f"http://127.0.0.1:{env_values['API_PORT']}"
    api = launch.start_gunicorn(url, env=env, cwd=tmp, log=tmp / "gunicorn.log")
    try:
        api.wait("/metrics", timeout_s=180, ready=_workers_ready(2))
        yield Server(url, settings, api.proc, tmp / "gunicorn.log", v1)
    finally:
        api.stop(timeout_s=15)


def centroid(i: int) -> dict[str, float]:
    return record(load_catalog(CATALOG).personas[i].centroid)


def test_predict_from_registered_champion(server: Server) -> None:
    response = server.post([centroid(0), centroid(2), record([90] * 10)])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "persona-classifier"
    assert body["model_version"] == server.v1
    ids = [p["persona_id"] for p in body["predictions"]]
    assert ids == ["sustainable-steve", "budget-bob", "unassigned"]
    assert body["predictions"][0]["distance"] == pytest.approx(0.0, abs=1e-9)
    assert body["predictions"][0]["margin"] > 0
    assert body["predictions"][2]["nearest_persona_id"] in {"sustainable-steve", "budget-bob",
                                                            "eco-conscious-haley"}  # fmt: skip
    wrapped = server.post({"instances": [centroid(1)]})
    assert wrapped.json()["predictions"][0]["persona_id"] == "eco-conscious-haley"


def test_health_ready_model(server: Server) -> None:
    assert server.get("/health").json()["status"] == "ok"
    ready = server.get("/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == server.v1
    info = server.get("/model").json()
    assert info["version"] == server.v1 and info["alias"] == "champion"
    assert info["personas"][0]["id"] == "sustainable-steve"
    assert info["features"] == list(FEATURE_NAMES)
    assert info["training"]["kind"] == "catalog"
    assert info["tags"]["kind"] == "catalog"
    assert info["limits"]["max_records"] == MAX_RECORDS and info["auth"] is True


def test_original_client_bodies_on_compat_route(server: Server) -> None:
    """The original study's client, unchanged but for the URL: its three body shapes get 200."""
    import pandas as pd

    rows = [list(load_catalog(CATALOG).personas[i].centroid) for i in (0, 0, 2)]
    frame = pd.DataFrame(rows)  # what the original test_gunicorn.py built
    named = frame.set_axis(list(FEATURE_NAMES), axis=1)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for body in (
        frame.to_dict(orient="records"),
        named.to_dict(orient="records"),
        frame.to_numpy().tolist(),
    ):
        response = requests.post(
            server.url + "/compat/predict", json=body, headers=auth, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"labels": [0, 0, 2]}
    detail = requests.post(
        server.url + "/compat/predict?detail=true", json=rows, headers=auth, timeout=10
    ).json()
    assert detail["model_version"] == server.v1
    assert detail["predictions"][2]["persona_id"] == "budget-bob"


def test_token_auth(server: Server) -> None:
    ok = server.post([centroid(0)])
    assert ok.status_code == 200
    for token, expected in ((None, "missing bearer token"), ("wrong", "invalid bearer token")):
        refused = server.post([centroid(0)], token=token)
        assert refused.status_code == 401 and expected in refused.json()["error"]
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert server.get("/health").status_code == 200  # token only guards /predict


def test_chunked_body(server: Server) -> None:
    payload = json.dumps([centroid(0)]).encode()
    ok = server.post(data=iter([payload[:10], payload[10:]]),
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert ok.status_code == 200, ok.text
    big = iter([b"[" + b" " * MAX_BODY, b"]"])
    refused = server.post(data=big, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413


GOOD = {name: 1.0 for name in FEATURE_NAMES}
J = {"Content-Type": "application/json"}


def _with(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key)
        else:
            out[key] = value
    return out


_DROP = object()


def raw(field: str, literal: str) -> bytes:
    """One record whose `field` is the JSON literal `literal` (NaN, Infinity...)."""
    text = json.dumps(GOOD).replace(f'"{field}": 1.0', f'"{field}": {literal}')
    return b"[" + text.encode() + b"]"


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TEXT = {"Content-Type": "text/plain"}
NEST = b"[" * 5000 + b"]" * 5000
ROW3 = [GOOD] * 3 + [_with(x2="a")] + [GOOD]
TOO_MANY = [GOOD] * (MAX_RECORDS + 1)
HUGE = b"[" + b" " * MAX_BODY + b"]"
INST_X = {"instances": [GOOD], "x": 1}
P = "/predict"

# (case, method, path, headers, raw body, status, text in "error", (row, column) of an issue)
BAD_REQUESTS: list[tuple[str, str, str, dict[str, str], bytes, int, str, Any]] = [
    ("text/plain", "POST", P, TEXT, b"[]", 415, "content type", None),
    ("no content type", "POST", P, {}, b"[]", 415, "content type", None),
    ("form", "POST", P, FORM, b"a=1", 415, "application/json", None),
    ("broken json", "POST", P, J, b"{", 400, "not valid JSON", None),
    ("truncated", "POST", P, J, b'[{"x1": 1,', 400, "not valid JSON", None),
    ("empty body", "POST", P, J, b"", 400, "empty request body", None),
    ("not utf-8", "POST", P, J, b"[\xff\xfe\xfa]", 400, "not", None),
    ("trailing data", "POST", P, J, b"[] []", 400, "not valid JSON", None),
    ("too deep", "POST", P, J, NEST, 400, "nested too deeply", None),
    ("string payload", "POST", P, J, b'"hello"', 422, "expected a JSON list", None),
    ("number payload", "POST", P, J, b"42", 422, "expected a JSON list", None),
    ("no instances", "POST", P, J, b'{"rows": []}', 422, "instances", (None, "instances")),
    (
        "instances {}",
        "POST",
        P,
        J,
        b'{"instances": {}}',
        422,
        "must be a list",
        (None, "instances"),
    ),
    ("extra top key", "POST", P, J, js(INST_X), 422, "expected a JSON list", (None, "x")),
    ("no records", "POST", P, J, b"[]", 422, "no records", None),
    ("record not object", "POST", P, J, b"[1]", 422, "expected an object", (0, None)),
    ("missing feature", "POST", P, J, js([_with(x3=_DROP)]), 422, "missing feature", (0, "x3")),
    ("extra feature", "POST", P, J, js([_with(x11=1.0)]), 422, "unexpected field", (0, "x11")),
    ("string value", "POST", P, J, js([_with(x1="1.5")]), 422, "expected a number", (0, "x1")),
    ("null value", "POST", P, J, js([_with(x2=None)]), 422, "null", (0, "x2")),
    ("bool value", "POST", P, J, js([_with(x4=True)]), 422, "boolean", (0, "x4")),
    ("array value", "POST", P, J, js([_with(x5=[1])]), 422, "array", (0, "x5")),
    ("NaN", "POST", P, J, raw("x6", "NaN"), 422, "NaN", (0, "x6")),
    ("Infinity", "POST", P, J, raw("x7", "Infinity"), 422, "not finite", (0, "x7")),
    ("-Infinity", "POST", P, J, raw("x8", "-Infinity"), 422, "not finite", (0, "x8")),
    ("1e999", "POST", P, J, raw("x9", "1e999"), 422, "not finite", (0, "x9")),
    ("out of range", "POST", P, J, js([_with(x10=1000)]), 422, "outside", (0, "x10")),
    ("huge integer", "POST", P, J, raw("x1", "1" + "0" * 400), 422, "invalid records", None),
    ("bad row 3 of 5", "POST", P, J, js(ROW3), 422, "row 3", (3, "x2")),
    ("too many records", "POST", P, J, js(TOO_MANY), 413, "too many records", None),
    ("body too large", "POST", P, J, HUGE, 413, "too large", None),
    ("GET /predict", "GET", P, {}, b"", 405, "Method Not Allowed", None),
    ("PUT /predict", "PUT", P, J, b"[]", 405, "Method Not Allowed", None),
    ("POST /model", "POST", "/model", J, b"{}", 405, "Method Not Allowed", None),
    ("unknown path", "GET", "/nope", {}, b"", 404, "Not Found", None),
]


def test_bad_requests_get_clear_4xx_and_server_survives(server: Server) -> None:
    assert len(BAD_REQUESTS) >= 25
    failures = []
    for case, method, path, headers, body, status, text, where in BAD_REQUESTS:
        sent = {**headers, "Authorization": f"Bearer {TOKEN}"}
        response = requests.request(method, server.url + path, data=body, headers=sent, timeout=10)
        problem = _check(response, status, text, where)
        if problem:
            failures.append(f"{case}: {problem}")
    assert not failures, "\n".join(failures)
    # Still answering, and no worker died or logged a traceback.
    assert server.get("/health").status_code == 200
    assert server.post([centroid(0)]).status_code == 200
    assert server.proc.poll() is None
    log = server.log.read_text()
    assert "Traceback" not in log and "WORKER TIMEOUT" not in log and "exiting" not in log.lower()


def _check(response: Any, status: int, text: str, where: Any) -> str | None:
    if response.status_code != status:
        return f"status {response.status_code} != {status}: {response.text[:200]}"
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return f"content type {response.headers.get('Content-Type')}"
    body = response.json()
    if text not in body.get("error", ""):
        return f"{text!r} not in error {body.get('error')!r}"
    if not isinstance(body.get("issues"), list):
        return "no issues list"
    if where is not None:
        spots = [(i.get("row"), i.get("column")) for i in body["issues"]]
        if tuple(where) not in spots:
            return f"no issue at {where}: {spots}"
    return None


def test_metrics_merge_workers(server: Server) -> None:
    for _ in range(6):
        assert server.post([centroid(0), centroid(1)]).status_code == 200
    text = server.get("/metrics").text
    assert 'persona_http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'persona_predictions_total{persona_id="sustainable-steve"}' in text
    assert "persona_http_request_duration_seconds_bucket" in text
    assert f'version="{server.v1}"' in text and "persona_model_info" in text
    haley = 'persona_predictions_total{persona_id="eco-conscious-haley"}'
    served = [line for line in text.splitlines() if line.startswith(haley)]
    assert served and float(served[0].split()[-1]) >= 6


def test_champion_alias_move_swaps_model_without_restart(server: Server) -> None:
    rng = np.random.default_rng(7)
    v2_model = PersonaModel(
        persona_ids=("alpha", "beta"),
        persona_names=("Alpha", "Beta"),
        centroids=rng.uniform(-20, 20, size=(2, 10)),
        radii=np.array([np.inf, np.inf]),
        training={"kind": "test", "months": ["2025-03"]},
    )
    pid_before = server.proc.pid
    v2 = register_champion(server.settings, v2_model, {"kind": "test"})
    assert v2 != server.v1
    deadline, streak = time.time() + 30, 0
    while time.time() < deadline and streak < 12:  # every worker must have swapped
        info = server.get("/model").json()
        streak = streak + 1 if info["version"] == v2 else 0
        time.sleep(0.1)
    assert streak >= 12, f"still serving {info['version']}"
    assert [p["id"] for p in info["personas"]] == ["alpha", "beta"]
    for _ in range(6):
        body = server.post([record(v2_model.centroids[1])]).json()
        assert body["model_version"] == v2
        assert body["predictions"][0]["persona_id"] == "beta"
    assert server.proc.pid == pid_before and server.proc.poll() is None
    metrics = server.get("/metrics").text
    assert 'persona_model_info{alias="champion",name="persona-classifier",pid=' in metrics


def test_api_only_serves_a_champion_moved_outside(server: Server) -> None:
    """No DATABASE_URL: the API follows an outside move of champion and writes nothing.

    Recording and governing the move is the governance receiver's job (test_governance).
    """
    from mlflow import MlflowClient

    settings, name = server.settings, server.settings.model_name
    assert "DATABASE_URL" not in _environ(server.proc.pid)
    plain = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    current = server.get("/model").json()["version"]
    plain.set_registered_model_alias(name, "champion", server.v1)
    deadline, streak = time.time() + 30, 0
    while time.time() < deadline and streak < 12:  # every worker follows the move
        streak = streak + 1 if server.get("/model").json()["version"] == server.v1 else 0
        time.sleep(0.1)
    assert streak >= 12
    plain.set_registered_model_alias(name, "champion", current)  # as the other tests left it
    folder = server.log.parent
    assert sorted(p.name for p in folder.rglob("*.db")) == ["mlflow.db"]  # no store made
    assert "outside the platform" not in server.log.read_text()


def _environ(pid: int) -> set[str]:
    """The names in a process's environment (Linux /proc)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return {item.split(b"=", 1)[0].decode() for item in raw.split(b"\0") if item}
