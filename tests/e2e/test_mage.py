"""The Mage project for real: `mage run` headless, and a running server's API trigger.

Runs Mage from .venv-mage against fresh PostgreSQL databases and throw-away MLflow sqlite
stores; the blocks send cycle steps to the app env's `persona cycle serve`.

- parity: Jan-May through the Mage API trigger on one store and through `run_month` on
  another give the same monitoring rows, versions, aliases, events and labels (ids and
  timestamps aside); the graph takes the branch the package chose;
- replay: every month, Jan-May, runs again, interleaved: through the CLI
  (`persona run-month`), through Mage, through the CLI again (the four `persona cycle`
  steps for February, the label branch, and March, the retrain branch; `run-month` for the
  others, to bound the time) and through Mage again: 3 Mage runs and 2 CLI runs of every
  month in all, and the state stays that of one run;
- the server binds 127.0.0.1 only, logs in with MAGE_ADMIN_PASSWORD (not admin/admin), and
  a wrong trigger token gets a 401 JSON error without a stack trace.

Every wait is on state, with budgets that survive a 4x slow-down.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from persona import flows, registry
from persona.catalog import load_catalog
from persona.months import Month
from persona.settings import Settings, load_settings
from persona.store import schema, survey_ingest
from persona.store.engine import open_store
from persona.synth import default_year, generate_month
from tests.conftest import CATALOG, fresh_database
from tests.e2e.mage_harness import (
    MAGE_CLIENT_ID,
    PROJECT,
    REPO,
    Mage,
    MageApi,
    http,
    mage_server,
    trigger_url,
)

MAGE = REPO / ".venv-mage" / "bin" / "mage"
PERSONA = REPO / ".venv" / "bin" / "persona"
TOKEN = "e2e_token_4f1c"
PASSWORD = "e2e_owner_pw_7d2a"
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"]
N = 200
BUDGET_S = 480.0  # one Mage run / CLI month; ~30-60 s on a busy 2-core machine
# The whole of a long test (pytest's own timeout is 900 s): at load 20-25 here (2026-12-07)
# the replay passed 900 s (16 CLI calls of 1-2 min each, 10 Mage runs) and `mage run`
# headless took 751 s. Each step inside keeps its own BUDGET_S.
LONG_TEST_S = 5 * BUDGET_S

pytestmark = [pytest.mark.mage, pytest.mark.postgres, pytest.mark.slow]


def _settings(root: Path, url: str) -> Settings:
    return load_settings(
        _env_file=None,
        var_dir=root / "var",
        database_url=url,
        mlflow_tracking_uri=f"sqlite:///{root}/var/mlflow.db",
        mlflow_artifact_root=str(root / "var" / "mlartifacts"),
        reports_dir=root / "var" / "reports",
        persona_catalog=CATALOG,
    )


def _setup(settings: Settings) -> None:
    """Jan-May 2025 ingested (March drifted), v1 bootstrapped on January."""
    catalog = load_catalog(settings.persona_catalog)
    engine = open_store(settings.database_url)
    try:
        for plan in default_year(2025, range(1, 6), N):
            frame, _ = generate_month(catalog, plan.month, plan.n, plan.scenario, seed=11)
            survey_ingest.ingest_frame(engine, frame, plan.month, f"synth-{plan.month}")
        registry.bootstrap(settings, engine)
    finally:
        engine.dispose()


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "VAR_DIR": str(settings.var_dir),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
        "REPORTS_DIR": str(settings.reports_dir),
        "PERSONA_CATALOG": str(settings.persona_catalog),
        "MAGE_API_TOKEN": TOKEN,
        "MAGE_ADMIN_EMAIL": "owner@example.com",
        "MAGE_ADMIN_PASSWORD": PASSWORD,
        "PERSONA_BIN": str(PERSONA),
    }


_VOLATILE_TAGS = ("promoted", "replaced_by", "restored_by_rollback")


def state(settings: Settings) -> dict[str, Any]:
    """What the cycle writes, ids and timestamps aside."""
    engine = open_store(settings.database_url)
    runs, ev, labels = schema.monitoring_runs.c, schema.model_events.c, schema.persona_assignments.c
    responses = schema.survey_responses.c
    try:
        with engine.connect() as conn:
            monitoring = conn.execute(
                select(
                    runs.survey_month, runs.reference_months, runs.model_version, runs.data_hash,
                    runs.decision, runs.reasons, runs.action_taken, runs.n_current,
                ).order_by(runs.survey_month, runs.reference_months, runs.model_version)
            ).all()  # fmt: skip
            events = conn.execute(
                select(ev.event, ev.from_version, ev.to_version, ev.reason, ev.actor).order_by(
                    ev.event_id
                )
            ).all()
            assigned = conn.execute(
                select(
                    responses.survey_month, responses.respondent_id, labels.model_version,
                    labels.persona_id, labels.nearest_persona_id, labels.distance,
                )
                .join(schema.survey_responses, labels.response_id == responses.response_id)
                .order_by(responses.survey_month, responses.respondent_id, labels.model_version)
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    versions = [
        (
            v.version,
            list(v.aliases),
            {k: t for k, t in v.tags.items() if k not in _VOLATILE_TAGS},
            sorted(k for k in v.tags if k in _VOLATILE_TAGS),
        )
        for v in registry.list_versions(settings)
    ]
    return {
        "monitoring": [tuple(r) for r in monitoring],
        "events": [tuple(r) for r in events],
        "labels": [(*r[:5], round(float(r[5]), 9)) for r in assigned],
        "versions": versions,
        "champion": registry.alias_version(settings, registry.CHAMPION),
        "challenger": registry.alias_version(settings, registry.CHALLENGER),
    }


def _diff(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """What differs between two states: per key, the items only one side has."""
    out = []
    for key in left:
        if left[key] == right[key]:
            continue
        if isinstance(left[key], list) and isinstance(right[key], list):
            only_left = [x for x in left[key] if x not in right[key]]
            only_right = [x for x in right[key] if x not in left[key]]
            out.append(f"{key}: only here {only_left[:5]}; only in the reference {only_right[:5]}")
        else:
            out.append(f"{key}: {left[key]!r} != {right[key]!r}")
    return out


def _reference_state(root: Path) -> dict[str, Any]:
    """Jan-May through `run_month` on a fresh store: the state of one run."""
    with fresh_database() as url:
        settings = _settings(root, url)
        _setup(settings)
        flows.run_year(settings, [Month(m) for m in MONTHS])
        return state(settings)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, Mage, Future[dict[str, Any]]]]:
    """A second fresh store and a Mage server on it, and the reference state being made.

    The reference (`_reference_state`, its own store) is computed in a thread while Mage
    starts and runs its months: the two share nothing, and the reference no longer waits
    for the server nor the server for it. This store's MLflow is set up (`_setup`) before
    the thread starts, so no two MLflow stores are created at once in this process.
    """
    root = tmp_path_factory.mktemp("mage")
    with fresh_database() as url:
        settings = _settings(root, url)
        _setup(settings)
        with ThreadPoolExecutor(1, thread_name_prefix="reference") as pool:
            reference = pool.submit(_reference_state, tmp_path_factory.mktemp("cli"))
            try:
                with mage_server(_env(settings), root, BUDGET_S) as mage:
                    yield settings, mage, reference
            finally:
                reference.cancel()


@pytest.fixture(scope="module")
def reference(served: tuple[Settings, Mage, Future[dict[str, Any]]]) -> dict[str, Any]:
    """The state of one run of Jan-May through `run_month` (waits for the thread)."""
    return served[2].result(timeout=len(MONTHS) * BUDGET_S)


def test_parity_mage_and_run_month(
    served: tuple[Settings, Mage, Future[dict[str, Any]]],
) -> None:
    settings, mage, reference_run = served
    blocks = {}
    for month in MONTHS:
        status, blocks[month], _ = mage.fire(month)
        assert status == "completed", (month, blocks[month], mage.log.read_text()[-3000:])
    feb, march = blocks["2025-02"], blocks["2025-03"]
    assert feb["check_drift"] == "completed" and feb["label_with_champion"] == "completed"
    assert feb["retrain_challenger"] == "condition_failed"
    for block in ("retrain_challenger", "promote_challenger", "label_after_retrain"):
        assert march[block] == "completed", march
    assert march["label_with_champion"] == "condition_failed"
    reference = reference_run.result(timeout=len(MONTHS) * BUDGET_S)
    got = state(settings)
    assert got["champion"] == "2" and got["challenger"] is None
    assert [r[6] for r in got["monitoring"]].count("retrained_promoted") == 1
    assert _diff(got, reference) == []


def _cli(settings: Settings, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(PERSONA), *args, "--json"],
        env=_env(settings), cwd=REPO, capture_output=True, text=True, timeout=BUDGET_S,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout))


@pytest.mark.timeout(LONG_TEST_S)
def test_replay_in_any_mix_of_doors(
    served: tuple[Settings, Mage, Future[dict[str, Any]]], reference: dict[str, Any]
) -> None:
    settings, mage, _ = served
    if state(settings)["champion"] != "2":  # run alone: the months' first runs first
        for month in MONTHS:
            assert mage.fire(month)[0] == "completed"
    for month in MONTHS:
        summary = _cli(settings, "run-month", "--month", month)
        assert summary["replayed"] and summary["labels_written"] == 0, summary
        status, blocks, _ = mage.fire(month)
        assert status == "completed", (month, blocks)
        if month in ("2025-02", "2025-03"):  # both branches, step by step
            checked = _cli(settings, "cycle", "check", "--month", month)
            for step in ("retrain", "promote", "label"):
                _cli(settings, "cycle", step, "--month", checked["month"])
        else:
            summary = _cli(settings, "run-month", "--month", month)
            assert summary["replayed"] and summary["labels_written"] == 0, summary
        status, blocks, _ = mage.fire(month)
        assert status == "completed", (month, blocks)
        assert _diff(state(settings), reference) == [], month


def _run_log(mage: Mage, run_id: int) -> str:
    """Everything the UI shows as one run's log (its pipeline and block log files)."""
    api = MageApi(mage.base, "owner@example.com", PASSWORD, TOKEN)
    url = f"{mage.base}/api/pipelines/monthly_persona_cycle/logs?pipeline_run_id[]={run_id}"
    status, body = http("GET", url, headers=api.headers)
    assert status == 200, body
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("content"), str):
                texts.append(node["content"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body)
    return "\n".join(texts)


def test_a_month_not_ingested_is_one_line_in_the_runs_log(
    served: tuple[Settings, Mage, Future[dict[str, Any]]],
) -> None:
    """A month never ingested: the run's log says so in one line, with no traceback."""
    settings, mage, _ = served
    before = state(settings)
    status, blocks, _ = mage.fire("2026-11")
    assert status == "completed", blocks
    assert blocks.pop("check_drift") == "completed"
    assert set(blocks.values()) == {"condition_failed"}, blocks  # no branch followed
    run_id = max(r[0] for r in mage.db.query("SELECT id FROM pipeline_run"))
    log = _run_log(mage, run_id)
    line = (
        "persona cycle check: no survey rows for month 2026-11 for labeling: ingest it first;"
        " nothing done, the run ends here"
    )
    assert log.count(line) == 1, log[-3000:]
    assert "Traceback" not in log and "Error" not in log.replace(line, ""), log[-3000:]
    assert state(settings) == before  # nothing recorded


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state_hex = line.split()[1], line.split()[3]
            if state_hex == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.append(local.rsplit(":", 1)[0])
    return found


def test_server_is_closed_by_default(
    served: tuple[Settings, Mage, Future[dict[str, Any]]],
) -> None:
    _, mage, _ = served
    assert _listening(mage.port) == ["0100007F"]  # 127.0.0.1 only, no [::] or 0.0.0.0
    login = f"{mage.base}/api/sessions"
    key = {"X-API-KEY": MAGE_CLIENT_ID}
    good = http(
        "POST", login, {"session": {"email": "owner@example.com", "password": PASSWORD}}, key
    )
    assert good[0] == 200 and "session" in good[1], good
    bad = http("POST", login, {"session": {"email": "admin@admin.com", "password": "admin"}}, key)
    assert "session" not in bad[1], bad
    url = trigger_url(mage.base, mage.schedule_id, "wrong_token")
    status, body = http("POST", url, {"pipeline_run": {"variables": {"month": "2025-02"}}})
    assert status == 401, body
    assert body["error"]["message"].startswith("Invalid token") and "Traceback" not in str(body)


@pytest.mark.timeout(LONG_TEST_S)
def test_mage_run_headless(tmp_path: Path, pg_url: str) -> None:
    """`mage run` (no conditionals evaluated): the steps still follow the package's branch."""
    settings = _settings(tmp_path, pg_url)
    _setup(settings)
    env = {**_env(settings), "MAGE_DATA_DIR": str(tmp_path / "mage_data")}

    def mage_run(pipeline: str, variables: dict[str, str]) -> None:
        cmd = [str(MAGE), "run", str(PROJECT), pipeline, "--runtime-vars", json.dumps(variables)]
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=BUDGET_S,
            check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Pipeline run completed" in proc.stdout + proc.stderr

    mage_run("monthly_persona_cycle", {"month": "2025-03"})
    got = state(settings)
    assert [(r[0], r[2], r[4], r[6]) for r in got["monitoring"]] == [
        ("2025-03", "1", "retrain", "retrained_promoted")
    ]
    assert got["champion"] == "2"
    mage_run("batch_labeling", {"month": "2025-04"})
    assert {(r[0], r[2]) for r in state(settings)["labels"]} == {
        ("2025-03", "1"),
        ("2025-03", "2"),
        ("2025-04", "2"),
    }
