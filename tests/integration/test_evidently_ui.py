"""The Evidently UI workspace: monthly checks as snapshots, a dashboard, `make evidently-ui`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import calibrate_radii, from_catalog
from persona.monitoring import check, decide
from persona.monitoring.evidently_fit import METRIC_TYPE
from persona.monitoring.report import build_snapshot
from persona.monitoring.workspace import PANELS, add_check, ensure_project, open_workspace
from persona.months import Month, Window
from persona.settings import Settings
from persona.synth import generate_month
from tests.conftest import CATALOG, REPO
from tests.integration.servers import free_port, start, stop, wait_http

pytestmark = pytest.mark.slow

FLOOR = 1.0 - 0.999  # 1 - RADIUS_QUANTILE (the default): the unassigned test's floor


def month_x(scenario: str, seed: int, month: str) -> np.ndarray:
    frame, _ = generate_month(load_catalog(CATALOG), month, 400, seed=seed, scenario=scenario)
    return frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)


def snapshot_of(cfg: Settings, month: str, scenario: str, seed: int) -> tuple[Any, str]:
    reference = month_x("stable", 1, "2025-01")
    base = from_catalog(load_catalog(CATALOG))
    model = from_catalog(load_catalog(CATALOG), calibrate_radii(base, reference, 0.999, 1.25))
    result = check(
        month_x(scenario, seed, month),
        reference,
        model,
        cfg.policy,
        unassigned_floor=FLOOR,
        seed=seed,
    )
    decision = decide(result, cfg.policy)
    return build_snapshot(
        result, decision, Month(month), Window.of(["2025-01"]), None
    ), decision.verdict


def test_monthly_checks_in_the_evidently_ui(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    cfg = make_settings()
    verdicts = {}
    for month, scenario, seed in (
        ("2025-03", "spread", 3),
        ("2025-02", "stable", 2),
        ("2025-03", "spread", 4),  # the month checked again: replaces its snapshot
    ):
        snapshot, verdicts[month] = snapshot_of(cfg, month, scenario, seed)
        add_check(cfg, snapshot, Month(month))
    workspace = open_workspace(cfg)
    project = ensure_project(workspace, cfg)  # idempotent: no duplicate panels
    assert len(project.dashboard.model().panels) == len(PANELS)
    assert [p.title for p in ensure_project(workspace, cfg).dashboard.model().panels] == [
        title for title, _, _ in PANELS
    ]
    assert len(workspace.list_runs(project.id)) == 2

    port = free_port()
    env = {
        **os.environ,
        "EVIDENTLY_WORKSPACE": str(cfg.evidently_dir),
        "EVIDENTLY_PORT": str(port),
        "EVIDENTLY_PROJECT": cfg.evidently_project,
    }
    log = tmp_path / "evidently-ui.log"
    proc = start(["make", "-s", "-C", str(REPO), "evidently-ui"], env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/version", proc, log)
        started = log.read_text()
        assert "Warning" not in started and "Traceback" not in started, started
        [listed] = requests.get(f"{base}/api/projects", timeout=10).json()
        assert listed["name"] == cfg.evidently_project
        pid = listed["id"]
        snaps = requests.get(f"{base}/api/projects/{pid}/snapshots", timeout=10).json()
        assert sorted(s["metadata"]["month"] for s in snaps) == ["2025-02", "2025-03"]
        dashboard = requests.get(f"{base}/api/v2/dashboards/{pid}", timeout=10).json()
        assert [p["title"] for p in dashboard["panels"]] == [title for title, _, _ in PANELS]
        [verdict] = [p for p in dashboard["panels"] if p["title"] == "Verdict"]
        words = ["no_drift", "watch", "retrain", "insufficient_data"]
        assert [v["legend"] for v in verdict["values"]] == words  # words, not a 0-3 code
        assert verdict["plot_params"] == {"plot_type": "bar", "is_stacked": True}
        keys = [key for _, _, panel_keys in PANELS for key in panel_keys]
        series_filter = [
            {"tags": [], "metadata": {}, "metric": METRIC_TYPE, "metric_labels": {"key": key}}
            for key in keys
        ]
        answer = requests.post(
            f"{base}/api/v2/snapshots/{pid}/data_series_batch",
            json={"series_filter": series_filter},
            timeout=30,
        ).json()
        months = [s["metadata"]["month"] for s in answer["sources"]]
        assert months == ["2025-02", "2025-03"]
        by_key = {s["params"]["key"]: s["values"] for s in answer["series"]}
        assert set(by_key) == set(keys)
        for word in words:  # each month's bar is its verdict's series
            assert by_key[f"verdict_{word}"] == [float(verdicts[m] == word) for m in months]
        assert by_key["unassigned_rate"][1] > by_key["unassigned_rate"][0]
        page = requests.get(f"{base}/projects/{pid}", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        stop(proc)


def test_run_check_adds_its_snapshot_to_the_workspace(
    make_settings: Callable[..., Settings],
) -> None:
    from dataclasses import dataclass, field

    from persona.model import PersonaModel
    from persona.monitoring import run_check
    from persona.store import survey_ingest
    from persona.store.engine import open_store

    @dataclass(frozen=True)
    class Loaded:
        model: PersonaModel
        name: str = "persona-classifier"
        version: str = "1"
        alias: str | None = "champion"
        uri: str = "test"
        tags: dict[str, Any] = field(default_factory=dict)

    cfg = make_settings()
    engine = open_store(cfg.database_url)
    catalog = load_catalog(CATALOG)
    for month, scenario, seed in (("2025-01", "stable", 1), ("2025-03", "spread", 3)):
        frame, _ = generate_month(catalog, month, 300, seed=seed, scenario=scenario)
        survey_ingest.ingest_frame(engine, frame)
    reference = month_x("stable", 1, "2025-01")
    base = from_catalog(catalog)
    loaded = Loaded(from_catalog(catalog, calibrate_radii(base, reference, 0.999, 1.25)))
    result = run_check(cfg, engine, Month("2025-03"), Window.of(["2025-01"]), loaded=loaded)
    # January against its own window (the model's training month): recorded, not plotted
    first = run_check(cfg, engine, Month("2025-01"), Window.of(["2025-01"]), loaded=loaded)
    assert first.run_id is not None
    workspace = open_workspace(cfg)
    project = ensure_project(workspace, cfg)
    [run_id] = workspace.list_runs(project.id)
    stored = workspace.get_run(project.id, run_id)
    assert stored.metadata["month"] == "2025-03"
    assert stored.metadata["verdict"] == result.verdict
    assert stored.metadata["model_version"] == "1"
    engine.dispose()


def test_an_older_dashboard_is_replaced(make_settings: Callable[..., Settings]) -> None:
    """A workspace made before the verdict had words: its numeric panel gives way."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel

    cfg = make_settings()
    workspace = open_workspace(cfg)
    project = workspace.create_project(cfg.evidently_project, description="old")
    code = PanelMetric(legend="Verdict", metric=METRIC_TYPE, metric_labels={"key": "verdict_code"})
    project.dashboard.add_panel(bar_plot_panel(title="Verdict", values=[code]))
    project = ensure_project(workspace, cfg)
    panels = project.dashboard.model().panels
    assert [p.title for p in panels] == [title for title, _, _ in PANELS]
    assert [v.legend for v in panels[-1].values] == [
        "no_drift", "watch", "retrain", "insufficient_data"
    ]  # fmt: skip
    again = ensure_project(open_workspace(cfg), cfg).dashboard.model()
    assert [p.id for p in again.panels] == [p.id for p in panels]  # idempotent
    assert "first month is not plotted" in project.description
