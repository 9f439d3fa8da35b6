"""A champion moved outside the platform (plain MLflow client) is governed after the fact.

The embedded default (no MLflow server, so no webhook): the reconcile runs as
`persona model sync` and at the start of a cycle: an audit row (actor ``external``,
previous version), ``challenger`` cleared, the gates evaluated, an alert to a local
webhook receiver when they fail. The governance receiver runs the same reconcile on
MLflow's webhooks (test_governance_receiver); the API never does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from persona import flows, registry
from persona.catalog import load_catalog
from persona.months import Month
from persona.settings import Settings
from persona.store import events, survey_ingest
from persona.store.engine import open_store
from persona.synth import default_year, generate_month

N = 200
BUDGET_S = 120.0  # waits on state; survives a 4x slow-down of a ~10 s detection


class Receiver(ThreadingHTTPServer):
    """A local webhook: records every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(size)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _wait(predicate: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + BUDGET_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {BUDGET_S}s waiting for {what}")


def _external(engine: Any, name: str) -> list[tuple[Any, ...]]:
    rows = events.list_events(engine, name)
    return [(r.from_version, r.to_version) for r in rows if r.actor == "external"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "VAR_DIR": str(settings.var_dir),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
        "REPORTS_DIR": str(settings.reports_dir),
        "PERSONA_CATALOG": str(settings.persona_catalog),
        **extra,
    }


@pytest.mark.slow
def test_champion_moved_with_the_plain_client_is_governed(
    make_settings: Callable[..., Settings], receiver: Receiver, tmp_path: Path
) -> None:
    settings = make_settings(auto_promote=False, alert_webhook_url=receiver.url)
    engine = open_store(settings.database_url)
    catalog = load_catalog(settings.persona_catalog)
    for plan in default_year(2025, range(1, 5), N):
        frame, _ = generate_month(catalog, plan.month, plan.n, plan.scenario, seed=3)
        survey_ingest.ingest_frame(engine, frame, plan.month, f"synth-{plan.month}")
    registry.bootstrap(settings, engine)
    march = flows.run_year(settings, [Month(m) for m in ("2025-01", "2025-02", "2025-03")])[
        -1
    ].to_dict()
    assert march["verdict"] == "retrain" and not march["promoted"]
    assert registry.alias_version(settings, registry.CHALLENGER) == "2"
    receiver.bodies.clear()  # March's drift alert
    plain = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    # 1. A person makes the challenger champion in the MLflow UI (= the plain client); the
    #    reconcile (what the receiver runs on the webhook) records and governs it.
    plain.set_registered_model_alias(settings.model_name, "champion", "2")
    synced = registry.sync_champion(settings, engine)
    assert synced.moved and _external(engine, settings.model_name) == [("1", "2")]
    tags = dict(plain.get_model_version(settings.model_name, "2").tags)
    assert registry.alias_version(settings, registry.CHALLENGER) is None  # cleared
    assert json.loads(tags["promoted"])["actor"] == "external"
    assert json.loads(tags["external_gates"])["passed"] is True
    assert receiver.bodies == []  # the gates passed: nothing to alert

    # 2. Back to v1 by hand, with gates it cannot pass: `persona model sync` records it,
    #    evaluates the gates after the fact and alerts.
    plain.set_registered_model_alias(settings.model_name, "champion", "1")
    strict = {"GATE_MIN_LABEL_STABILITY": "1.0", "GATE_METRIC_TOLERANCE": "0"}
    env = _env(settings, ALERT_WEBHOOK_URL=receiver.url, **strict)
    persona = str(Path(sys.executable).parent / "persona")
    proc = subprocess.run(
        [persona, "model", "sync", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    synced = json.loads(proc.stdout)
    assert synced["moved"] and (synced["previous"], synced["champion"]) == ("2", "1")
    assert synced["gates"]["passed"] is False, synced["gates"]
    assert _external(engine, settings.model_name) == [("1", "2"), ("2", "1")]
    alert = _wait(lambda: receiver.bodies, "the alert")[0]
    assert "outside the platform" in alert["title"] and alert["fields"]["champion"] == "1"
    again = subprocess.run(
        [persona, "model", "sync", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert json.loads(again.stdout)["moved"] is False  # recorded once

    # 3. Moved again; the next cycle notices it first thing.
    plain.set_registered_model_alias(settings.model_name, "champion", "2")
    april = flows.run_month(settings, Month("2025-04")).to_dict()
    assert april["governance"]["moved"] and april["model_version_before"] == "2"
    assert april["governance"]["relabelled"] == ["2025-03"]  # labels follow the champion
    assert _external(engine, settings.model_name) == [("1", "2"), ("2", "1"), ("1", "2")]
    engine.dispose()


@pytest.mark.postgres
def test_cycle_step_lock_is_exclusive_across_connections(pg_url: str) -> None:
    from persona.errors import StoreError
    from persona.store.locks import store_lock

    first, second = open_store(pg_url), open_store(pg_url)
    try:
        with store_lock(first, "persona-cycle:2025-03", 5.0):
            taken = store_lock(second, "persona-cycle:2025-03", 0.5)
            with pytest.raises(StoreError, match="could not lock"), taken:
                pass
            with store_lock(second, "persona-cycle:2025-04", 0.5):  # another month: free
                pass
        with store_lock(second, "persona-cycle:2025-03", 5.0):  # released
            pass
    finally:
        first.dispose()
        second.dispose()


def test_a_failed_relabel_keeps_the_verdict_and_the_alert(
    make_settings: Callable[..., Settings], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona.errors import StoreError
    from persona.months import Window
    from persona.registry import governance

    settings = make_settings(k_max=3)
    engine = open_store(settings.database_url)
    catalog = load_catalog(settings.persona_catalog)
    for month in ("2025-01", "2025-02"):
        frame, _ = generate_month(catalog, month, N, "stable", seed=3)
        survey_ingest.ingest_frame(engine, frame, month)
    registry.bootstrap(settings, engine)
    assert registry.train_challenger(settings, engine, Window.of(["2025-02"])).version == "2"
    plain = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    plain.set_registered_model_alias(settings.model_name, "champion", "2")
    plain.delete_model_version_tag(settings.model_name, "1", "training_months")  # no gates

    def broken(*args: Any) -> tuple[Month, ...]:
        raise StoreError("store lost during the relabel")

    monkeypatch.setattr(governance, "relabel_after_move", broken)
    alerting = make_settings(k_max=3, alert_webhook_url=receiver.url)
    with pytest.raises(StoreError, match="relabel"):
        governance.sync_champion(alerting, engine)
    assert _external(engine, settings.model_name) == [("1", "2")]
    tags = dict(plain.get_model_version(settings.model_name, "2").tags)
    verdict = json.loads(tags["external_gates"])
    assert verdict["passed"] is None and "training_months" in verdict["error"]
    alert = _wait(lambda: receiver.bodies, "the alert")[0]
    assert "outside the platform" in alert["title"] and alert["fields"]["champion"] == "2"
    engine.dispose()
