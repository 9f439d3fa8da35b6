"""The webhook signature check (pure) and the receiver's refusals (Flask test client)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from persona.governance.receiver import create_receiver
from persona.governance.signature import check, sign
from persona.settings import Settings

SECRET = "s3cret"
BODY = json.dumps({"entity": "model_version_alias", "action": "created",
                   "data": {"name": "persona-classifier", "alias": "champion", "version": "2"}}
                  ).encode()  # fmt: skip


def _headers(secret: str = SECRET, stamp: int | None = None, body: bytes = BODY) -> dict[str, str]:
    when = str(int(time.time()) if stamp is None else stamp)
    return {
        "X-MLflow-Delivery-Id": "d-1",
        "X-MLflow-Timestamp": when,
        "X-MLflow-Signature": sign(secret, "d-1", when, body),
    }


def test_signature_matches_mlflow_and_refuses_everything_else() -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    # The same bytes MLflow signs: its own function gives the same header.
    assert sign(SECRET, "d-1", "17", BODY) == _generate_hmac_signature(
        SECRET, "d-1", "17", BODY.decode()
    )
    now = time.time()
    assert check(SECRET, _headers(), BODY, now, 300) is None
    assert check(SECRET, _headers("other"), BODY, now, 300) == "bad signature"
    assert check(SECRET, _headers(), BODY + b" ", now, 300) == "bad signature"  # tampered
    assert "s away from now" in str(check(SECRET, _headers(stamp=int(now) - 301), BODY, now, 300))
    assert "missing" in str(check(SECRET, {}, BODY, now, 300))
    assert "bad timestamp" in str(
        check(SECRET, {**_headers(), "X-MLflow-Timestamp": "x"}, BODY, now, 300)
    )
    assert "no webhook secret" in str(check("", _headers(), BODY, now, 300))


def test_receiver_refuses_forged_calls_before_doing_anything(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(governance_webhook_secret=SECRET)
    app = create_receiver(settings, schedule=False)
    api = app.test_client()
    forged = api.post("/webhook", data=BODY, headers=_headers("guess"))
    assert forged.status_code == 401 and forged.get_json()["error"] == "refused: bad signature"
    assert api.get("/health").get_json() == {"status": "ok", "last": None}  # no reconcile
    assert not (settings.var_dir / "persona.db").exists()  # nothing opened, nothing written
    other = json.dumps({"entity": "model_version", "action": "created", "data": {}}).encode()
    ignored = api.post("/webhook", data=other, headers=_headers(body=other))
    assert ignored.status_code == 200 and ignored.get_json() == {"ignored": "model_version"}
    unset = create_receiver(make_settings(), schedule=False).test_client()
    assert unset.post("/webhook", data=BODY, headers=_headers()).status_code == 401


def test_the_receiver_runs_with_the_api_gunicorn_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """`persona governance serve` passes persona.serving.gunicorn_conf: its hooks, no more."""
    from gunicorn.app.base import Application
    from typer.testing import CliRunner

    from persona.cli import app
    from persona.serving import gunicorn_conf

    said = CliRunner().invoke(app, ["governance", "serve", "--print"])
    assert said.exit_code == 0, said.output
    [config] = [a for a in said.output.split() if a.startswith("--config=")]
    location = config.removeprefix("--config=")
    assert location == "python:persona.serving.gunicorn_conf"

    class Loader(Application):  # gunicorn's own config loading, without a server
        def load_config(self) -> None:
            self.load_config_from_module_name_or_filename(location)

        def load(self) -> None:
            raise AssertionError("not served")

    cfg = Loader().cfg
    assert cfg.worker_exit is gunicorn_conf.worker_exit  # a finished worker ends at once
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # the receiver has none
    assert cfg.child_exit(None, type("Worker", (), {"pid": 1})()) is None
