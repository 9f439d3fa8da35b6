"""The monthly cycle end to end over Jan-May 2025 on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from persona import flows, registry
from persona.catalog import load_catalog
from persona.cycle_results import RetrainStep
from persona.errors import RegistryError
from persona.months import Month
from persona.settings import Settings
from persona.store import schema, survey_ingest
from persona.store.engine import open_store
from persona.store.survey_queries import stored_window
from persona.synth import default_year, generate_month
from tests.webhook import Webhook

MONTHS = [Month(m) for m in ("2025-01", "2025-02", "2025-03", "2025-04", "2025-05")]
N = 300


def _setup(settings: Settings) -> None:
    """Ingest the demo year (March drifted) and bootstrap v1 on January."""
    catalog = load_catalog(settings.persona_catalog)
    engine = open_store(settings.database_url)
    try:
        for plan in default_year(2025, range(1, 6), N):
            frame, _truth = generate_month(catalog, plan.month, plan.n, plan.scenario, seed=7)
            survey_ingest.ingest_frame(engine, frame, plan.month, f"synth-{plan.month}")
        registry.bootstrap(settings, engine)
    finally:
        engine.dispose()


def _state(settings: Settings) -> dict[str, Any]:
    """Everything the cycle writes: row counts, model versions and aliases."""
    engine = open_store(settings.database_url)
    counts = {}
    try:
        with engine.connect() as conn:
            for table in (
                schema.persona_assignments,
                schema.monitoring_runs,
                schema.model_events,
            ):
                counts[table.name] = conn.execute(select(func.count()).select_from(table)).scalar()
            actions = conn.execute(
                select(
                    schema.monitoring_runs.c.survey_month, schema.monitoring_runs.c.action_taken
                ).order_by(schema.monitoring_runs.c.run_id)
            ).all()
    finally:
        engine.dispose()
    versions = registry.list_versions(settings)
    return {
        "counts": counts,
        "actions": [tuple(a) for a in actions],
        "versions": sorted(v.version for v in versions),
        "champion": registry.alias_version(settings, registry.CHAMPION),
        "challenger": registry.alias_version(settings, registry.CHALLENGER),
    }


def _labels_per_month(settings: Settings, version: str) -> dict[str, int]:
    engine = open_store(settings.database_url)
    t = schema.persona_assignments.c
    r = schema.survey_responses.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(r.survey_month, func.count())
                .select_from(
                    schema.persona_assignments.join(
                        schema.survey_responses, t.response_id == r.response_id
                    )
                )
                .where(t.model_version == version)
                .group_by(r.survey_month)
            ).all()
    finally:
        engine.dispose()
    return {str(m): int(n) for m, n in rows}


def _check_year(settings: Settings) -> list[dict[str, Any]]:
    _setup(settings)
    summaries = [s.to_dict() for s in flows.run_year(settings, MONTHS)]
    verdicts = {s["month"]: s["verdict"] for s in summaries}
    assert verdicts["2025-03"] == "retrain", summaries[2]["reasons"]
    assert [m for m, v in verdicts.items() if v == "retrain"] == ["2025-03"], verdicts
    march = summaries[2]
    assert march["model_version_before"] == "1"
    assert march["challenger_version"] == "2"
    assert march["training_months"] == ["2025-01", "2025-02", "2025-03"]
    assert march["promoted"] is True and march["model_version_after"] == "2"
    assert [s["model_version_after"] for s in summaries] == ["1", "1", "2", "2", "2"]
    assert all(s["rows"] == N for s in summaries)
    assert all(sum(s["persona_mix"].values()) == N for s in summaries)
    # Every respondent of every month is labelled by the model that served that month.
    assert _labels_per_month(settings, "1") == {m: N for m in MONTHS[:3]}
    assert _labels_per_month(settings, "2") == {m: N for m in MONTHS[2:]}
    state = _state(settings)
    assert state["versions"] == ["1", "2"]
    assert state["champion"] == "2" and state["challenger"] is None
    assert state["counts"]["monitoring_runs"] == 5
    assert state["counts"]["model_events"] == 2  # bootstrap + promote
    # Rerunning any month changes nothing.
    again = flows.run_month(settings, Month("2025-03")).to_dict()
    assert again["labels_written"] == 0 and again["replayed"] is True
    for key in ("verdict", "model_version_before", "model_version_after", "challenger_version"):
        assert again[key] == march[key]
    assert again["promoted"] is True
    flows.run_month(settings, Month("2025-01"))
    assert _state(settings) == state
    return summaries


def _mlflow_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}


def _cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "VAR_DIR": str(settings.var_dir),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
        "REPORTS_DIR": str(settings.reports_dir),
        "PERSONA_CATALOG": str(settings.persona_catalog),
    }


@pytest.mark.slow
def test_year_on_sqlite(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    import mlflow

    settings = make_settings()
    env_before = _mlflow_environ()
    uris_before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    summaries = _check_year(settings)  # bootstrap, checks, training, registration in-process
    # The package made its own clients: nothing exported to child processes, MLflow's
    # defaults untouched.
    assert _mlflow_environ() == env_before
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == uris_before
    assert all(s["report_path"] and Path(s["report_path"]).exists() for s in summaries)
    before = _state(settings)
    persona = [str(Path(sys.executable).parent / "persona")]
    proc = subprocess.run(
        [*persona, "run-month", "--month", "2025-04", "--json"],
        env=_cli_env(settings), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["month"] == "2025-04" and result["verdict"] == summaries[3]["verdict"]
    assert result["labels_written"] == 0 and result["model_version_after"] == "2"
    assert _state(settings) == before
    human = subprocess.run(
        [*persona, "run-month", "--month", "2025-13"],
        env=_cli_env(settings), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert human.returncode == 2 and "2025-13" in human.stderr


@pytest.mark.slow
@pytest.mark.postgres
def test_year_on_postgres(make_settings: Callable[..., Settings], pg_url: str) -> None:
    _check_year(make_settings(database_url=pg_url))


@pytest.mark.slow
def test_failure_part_way_then_rerun_completes(
    make_settings: Callable[..., Settings],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean = make_settings()
    _setup(clean)
    flows.run_year(clean, MONTHS[:3])
    expected = _state(clean)

    other = tmp_path_factory.mktemp("faulty")
    broken = make_settings(
        database_url=f"sqlite:///{other}/persona.db",
        mlflow_tracking_uri=f"sqlite:///{other}/mlflow.db",
        mlflow_artifact_root=str(other / "mlartifacts"),
        reports_dir=other / "reports",
    )
    _setup(broken)
    flows.run_year(broken, MONTHS[:2])
    real_promote = registry.promote

    def failing_promote(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RegistryError("injected: MLflow went away during promotion")

    monkeypatch.setattr(registry, "promote", failing_promote)
    with pytest.raises(RegistryError, match="injected"):
        flows.run_month(broken, Month("2025-03"))
    half = _state(broken)
    assert half["champion"] == "1" and half["challenger"] == "2"
    monkeypatch.setattr(registry, "promote", real_promote)
    summary = flows.run_month(broken, Month("2025-03")).to_dict()
    assert summary["promoted"] is True and summary["model_version_after"] == "2"
    assert _state(broken) == expected


def _blocks_helper() -> Any:
    """The Mage blocks' helper module (02_pipeline, imported as Mage imports it)."""
    path = Path(__file__).resolve().parents[2] / "02_pipeline/persona_pipeline/utils/persona_cli.py"
    spec = importlib.util.spec_from_file_location("persona_cli_blocks", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_blocks_say_a_month_not_ingested_in_one_line(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the Mage blocks do on a month never ingested, through the real step runner.

    The block's output (its log in Mage) is one line, nothing is raised (Mage would log a
    traceback), no branch follows and nothing is written. tests/e2e/test_mage.py reads the
    same line in a Mage run's log.
    """
    settings = make_settings()
    _setup(settings)
    before = _state(settings)
    for key, value in _cli_env(settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PERSONA_BIN", str(Path(sys.executable).parent / "persona"))
    monkeypatch.setenv("PERSONA_WORKDIR", str(tmp_path))
    helper = _blocks_helper()
    said = "no survey rows for month 2026-11 for labeling: ingest it first"
    try:
        check = helper.run_step("check", month="2026-11", run_date="2026-12-02")
        assert capsys.readouterr().out.splitlines() == [
            f"persona cycle check: {said}; nothing done, the run ends here"
        ]
        assert not helper.on_retrain_branch(check) and not helper.on_label_branch(check)
        for step in ("retrain", "promote", "label"):  # `mage run` evaluates no conditionals
            assert helper.run_step(step, after=check) is check
        assert capsys.readouterr().out == ""
        batch = helper.run_step("batch_label", month="2026-11", run_date="2026-12-03")
        assert capsys.readouterr().out.splitlines() == [
            f"persona cycle batch_label: {said}; nothing done, the run ends here"
        ]
        assert set(batch) == {"step", "stopped"}
    finally:
        helper._runner["proc"].stdin.close()
        helper._runner["proc"].wait(timeout=60)
    assert _state(settings) == before


def _action(settings: Settings, month: Month) -> str | None:
    engine = open_store(settings.database_url)
    try:
        return flows._month_run(engine, month).action_taken  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_a_failed_alert_is_recorded_as_failed_and_sent_on_the_next_step(
    make_settings: Callable[..., Settings],
) -> None:
    with Webhook([503]) as hook:
        settings = make_settings(alert_webhook_url=hook.url, alert_attempts=2)
        _setup(settings)
        march = Month("2025-03")
        checked = flows.run_step(settings, "check", march)
        assert checked.verdict == "retrain"
        assert [(d.ok, d.status) for d in checked.alerts] == [(False, 503)]
        assert hook.statuses == [503, 503]  # retried once, then gave up
        assert _action(settings, march) == "pending:retrain"  # not recorded as sent
        hook.answer(200)  # the receiver is back: the next step delivers it
        flows.run_step(settings, "retrain", march)
        assert hook.statuses == [503, 503, 200]
        assert hook.posts[-1].json["title"] == "PersonaOps: retrain for 2025-03"
        assert _action(settings, march) == "pending:retrain:alerted"
        flows.run_step(settings, "promote", march)  # sent once: no second alert
        again = flows.run_step(settings, "check", march)
        assert again.alerts == () and len(hook.posts) == 3


@pytest.mark.postgres
def test_two_concurrent_checks_of_a_month_alert_once(
    make_settings: Callable[..., Settings], pg_url: str
) -> None:
    with Webhook() as hook:
        settings = make_settings(database_url=pg_url, alert_webhook_url=hook.url)
        _setup(settings)
        results: list[Any] = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def check() -> None:
            start.wait()
            try:
                results.append(flows.run_step(settings, "check", Month("2025-03")))
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=check) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not errors, errors
        assert len(results) == 2 and {r.verdict for r in results} == {"retrain"}
        assert sorted(len(r.alerts) for r in results) == [0, 1]  # the month lock: one alert
        assert len(hook.posts) == 1


def _challenger(settings: Settings, month: Month) -> registry.TrainedVersion | None:
    engine = open_store(settings.database_url)
    try:
        window = stored_window(engine, month, settings.training_window_months)
        return registry.find_challenger(settings, engine, window)
    finally:
        engine.dispose()


def test_a_failed_review_alert_is_owed_and_sent_by_the_next_step(
    make_settings: Callable[..., Settings],
) -> None:
    """A retrain that registers a challenger for review alerts; a failed delivery is retried."""
    march = Month("2025-03")
    with Webhook([200, 503, 200]) as hook:  # the check's alert, then the review's twice
        settings = make_settings(alert_webhook_url=hook.url, alert_attempts=1)
        catalog = load_catalog(settings.persona_catalog)
        engine = open_store(settings.database_url)
        try:  # the seeded segment of tests/integration/test_discovery_flow.py
            for month in ("2025-01", "2025-02", "2025-03"):
                scenario = "new_segment" if month == "2025-03" else "stable"
                frame, _ = generate_month(catalog, month, 400, scenario, 3, new_share=0.12)
                survey_ingest.ingest_frame(engine, frame, month, f"synth-{month}")
            registry.bootstrap(settings, engine)
        finally:
            engine.dispose()
        assert flows.run_step(settings, "check", march).verdict == "retrain"
        retrained = flows.run_step(settings, "retrain", march)
        assert isinstance(retrained, RetrainStep) and retrained.challenger.needs_review
        version = retrained.challenger.version
        assert hook.statuses == [200, 503]  # the review's alert failed: owed
        owed = _challenger(settings, march)
        assert owed is not None and (owed.review or {}).get("alert_owed") == "new"
        flows.run_step(settings, "promote", march)  # the next step sends it again
        assert hook.statuses == [200, 503, 200]
        title = f"PersonaOps: challenger v{version} for 2025-03 needs review"
        assert hook.posts[-1].json["title"] == title
        sent = _challenger(settings, march)
        assert sent is not None and "alert_owed" not in (sent.review or {})
        flows.run_step(settings, "label", march)  # delivered: nothing more
        flows.run_step(settings, "retrain", march)
        assert len(hook.posts) == 3
