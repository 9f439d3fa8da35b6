"""Pure pieces of the reliability work: reload error life cycle, model cache, surrogate-safe
errors, gunicorn's bind, dependency errors in the CLI, stack secrets."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona import stack_secrets as secrets_check
from persona.catalog import load_catalog
from persona.cli._common import dependency_error
from persona.errors import Issue
from persona.model import PersonaModel, from_catalog
from persona.serving.app import create_app
from persona.serving.gunicorn_conf import options
from persona.serving.holder import ModelHolder, ModelSource
from persona.serving.predict import error_body
from persona.serving.source import FileModelCache
from persona.settings import load_settings
from persona.store.engine import pg_connect_args

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Fake:
    model: PersonaModel
    name: str
    version: str
    alias: str | None = "champion"
    uri: str = "test"
    tags: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def model() -> PersonaModel:
    return from_catalog(load_catalog(REPO / "01_model" / "personas.yaml"), np.full(3, 10.0))


def test_reload_error_shows_then_clears_on_the_next_successful_check(model: Any) -> None:
    state: dict[str, Any] = {"down": False, "target": "1"}

    def target() -> str:
        if state["down"]:
            raise ConnectionError("registry unreachable")
        return str(state["target"])

    holder = ModelHolder(ModelSource(lambda: Fake(model, "m", state["target"]), target, "f"), 30)
    assert holder.refresh() and holder.last_error is None
    state["down"] = True
    assert not holder.refresh()
    assert "registry unreachable" in (holder.last_error or "")
    assert holder.current is not None and holder.current.version == "1"  # still serving
    state["down"] = False
    assert not holder.refresh()  # same version: nothing to load, but the error is over
    assert holder.last_error is None


def test_cache_round_trip_and_start_from_cache(tmp_path: Path, model: Any) -> None:
    cache = FileModelCache(tmp_path, "models:/m@champion")
    assert cache.load() is None
    cache.save(Fake(model, "m", "4", tags={"k": "v"}))
    loaded = cache.load()
    assert loaded is not None and loaded.version == "4" and loaded.tags == {"k": "v"}
    np.testing.assert_array_equal(loaded.model.centroids, model.centroids)
    assert FileModelCache(tmp_path, "models:/other@champion").load() is None
    cache.path.write_text("{broken")
    assert cache.load() is None  # unreadable cache: ignored, not fatal

    cache.save(Fake(model, "m", "4"))

    def unreachable() -> str:
        raise ConnectionError("refused")

    holder = ModelHolder(ModelSource(lambda: Fake(model, "m", "5"), unreachable, "r"), 30,
                         cache=cache)  # fmt: skip
    assert holder.load_cached() and holder.from_cache and holder.current.version == "4"
    holder.refresh()
    assert holder.from_cache and "refused" in (holder.last_error or "")
    # Registry back: the cached model is replaced by the registry's, the cache updated.
    holder.source = ModelSource(lambda: Fake(model, "m", "5"), lambda: "5", "r")
    assert holder.refresh() and not holder.from_cache and holder.current.version == "5"
    assert cache.load().version == "5"


def test_ready_reports_the_reason_or_the_cache(tmp_path: Path, model: Any) -> None:
    settings = load_settings(_env_file=None, var_dir=tmp_path)
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        raise ConnectionError("connection refused")

    app = create_app(settings, ModelSource(lambda: Fake(model, "m", "1"), slow, "src"))
    client = app.test_client()
    answer = client.get("/ready")
    assert answer.status_code == 503 and "still loading from src" in answer.get_json()["error"]
    release.set()
    holder = app.extensions["persona"]["holder"]
    holder.first_check.wait(10)
    answer = client.get("/ready").get_json()
    assert "connection refused" in answer["error"] and answer["last_error"]
    holder.stop()


def test_error_body_survives_unpaired_surrogates() -> None:
    body = error_body("bad key", [Issue(0, "\ud800", "unexpected")])
    assert json.loads(body)["issues"][0]["column"] == "\ud800"


def test_predict_refuses_surrogates_with_json_4xx(tmp_path: Path, model: Any) -> None:
    settings = load_settings(_env_file=None, var_dir=tmp_path)
    app = create_app(settings, ModelSource(lambda: Fake(model, "m", "1"), lambda: None, "s"),
                     start_reloader=False)  # fmt: skip
    client = app.test_client()
    for raw in (b'[{"\\ud800": 1}]', b'{"\\ud800": 1}', b'[{"x1": "\\udc00"}]'):
        answer = client.post("/predict", data=raw, content_type="application/json")
        assert 400 <= answer.status_code < 500 and answer.is_json, raw
        assert "error" in answer.get_json()


def test_over_limit_body_is_drained_before_the_413(tmp_path: Path, model: Any) -> None:
    settings = load_settings(_env_file=None, var_dir=tmp_path, api_max_body_bytes=100)
    app = create_app(settings, ModelSource(lambda: Fake(model, "m", "1"), lambda: None, "s"),
                     start_reloader=False)  # fmt: skip
    wsgi = app.wsgi_app
    for size, drained in ((1_000, True), (settings.api_drain_max_bytes + 1, False)):
        stream = io.BytesIO(b" " * min(size, 2_000))
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "wsgi.input": stream,
                   "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(size)}  # fmt: skip
        status, headers, body = wsgi.predict(environ)
        assert status == 413 and b"too large" in body
        assert (("Connection", "close") not in headers) == drained
        if drained:
            assert stream.read() == b""  # read to the end before answering


def test_malformed_body_stream_is_a_400() -> None:
    from persona.serving.app import _read_body
    from persona.serving.predict import ApiError

    class Broken:
        def read(self, size: int = -1) -> bytes:
            raise OSError("Invalid chunk size: 'zz'")

    environ = {"wsgi.input": Broken(), "HTTP_TRANSFER_ENCODING": "chunked"}
    with pytest.raises(ApiError) as caught:
        _read_body(environ, 100, 1000)
    assert caught.value.status == 400 and "chunk" in caught.value.error


def test_gunicorn_alone_binds_api_host_and_port() -> None:
    """No front process: gunicorn listens on API_HOST:API_PORT itself (IPv6 in brackets)."""
    assert options(load_settings(_env_file=None, api_port=8123).serving).bind == ("127.0.0.1:8123",)
    assert options(load_settings(_env_file=None, api_host="::").serving).bind == ("[::]:8000",)


def test_pg_connect_args_bound_every_wait() -> None:
    args = pg_connect_args(10, 2.5)
    assert args["connect_timeout"] == 10 and args["options"] == "-c statement_timeout=2500"
    assert "options" not in pg_connect_args(1, 0) and pg_connect_args(1, 0)["connect_timeout"] == 2


def test_dependency_errors_become_one_line() -> None:
    from mlflow.exceptions import MlflowException

    message = dependency_error(MlflowException("API request failed\nwith\n  many lines"))
    assert message == (
        "MLflow unavailable or failing (MlflowException): API request failed with many lines"
    )
    assert dependency_error(ValueError("a bug")) is None
    assert len(dependency_error(TimeoutError("x" * 5000)) or "") < 700


def test_stack_refuses_default_secrets_unless_local_trial() -> None:
    safe = {name: f"s{i}" for i, name in enumerate(secrets_check.PASSWORDS)} | {"API_TOKEN": "t"}
    assert secrets_check.verdict(safe) == (0, "")
    sample = {**safe, "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "change-me-change-me-000="}
    assert "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY is a default" in secrets_check.verdict(sample)[1]
    assert {"PG_CYCLE_PASSWORD", "MLFLOW_ADMIN_PASSWORD"} <= set(secrets_check.PASSWORDS)
    weak = {**safe, "POSTGRES_PASSWORD": "change-me", "API_TOKEN": ""}
    code, message = secrets_check.verdict(weak)
    assert code == 2 and "POSTGRES_PASSWORD is a default value" in message
    assert "API_TOKEN is empty" in message and "change-me" not in message.split(":")[0]
    code, message = secrets_check.verdict({**weak, "STACK_LOCAL_TRIAL": "true"})
    assert code == 0 and "WARNING local trial" in message


def test_secrets_folder_is_git_ignored() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "secrets/" in ignored
