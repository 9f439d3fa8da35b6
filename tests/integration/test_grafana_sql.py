"""Every Grafana panel's SQL runs on a real PostgreSQL store and returns rows of the right shape.

Grafana cannot run here, so this test executes each `rawSql` of
`04_monitoring/grafana/dashboards/persona.json` as Grafana would (no macros are used) on a
store filled through the package: ingested months, the bootstrap champion, labels and
monitoring runs, written by the monthly cycle (`flows.run_year`) as in the demo.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from persona import flows, registry
from persona.catalog import load_catalog
from persona.months import Month
from persona.settings import Settings
from persona.store import monitoring as store_monitoring
from persona.store import survey_ingest
from persona.store.engine import open_store
from persona.survey_input import BadRowLimit
from persona.synth import generate_month

GRAFANA = Path(__file__).resolve().parents[2] / "04_monitoring" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "persona.json"
REJECTS = {"2025-02": 3}  # rows of a month let in by --max-bad-rows
PLAN = {
    "2025-01": "stable",
    "2025-02": "stable",
    "2025-03": "spread",
    "2025-04": "stable",
    "2025-05": "stable",
}

# Expected column names of table panels (by title); time-series panels are checked by format.
TABLE_COLUMNS = {
    "Model version in production": ["champion", "event", "created_at"],
    "Model version by month": ["month", "model", "version", "rows", "labelled_at"],
    "Latest verdicts": [
        "month",
        "reference",
        "version",
        "verdict",
        "drift_share",
        "unassigned_rate",
        "reasons",
        "action",
        "report",
        "checked_at",
    ],
    "Drifted features by month": ["month", "drifted", "features", "drifted_features"],
}


def fill_store(cfg: Settings, engine: Engine) -> dict[str, Any]:
    """Fill the store with a demo run: ingest Jan-May 2025, bootstrap, the monthly cycle."""
    catalog = load_catalog(cfg.persona_catalog)
    for month, scenario in PLAN.items():
        frame, _ = generate_month(catalog, month, 500, scenario, seed=11)
        options = survey_ingest.IngestOptions(bad_rows=BadRowLimit(REJECTS.get(month, 0)))
        frame.loc[: REJECTS.get(month, 0) - 1, "x1"] = 1e6  # rows the ingest sets aside
        survey_ingest.ingest_frame(engine, frame, month, f"synth-{month}", options=options)
    registry.bootstrap(cfg, engine)
    summaries = [s.to_dict() for s in flows.run_year(cfg, [Month(m) for m in PLAN])]
    checks = {
        run.survey_month: {"verdict": run.decision, "drift_share": run.drift_share}
        for run in store_monitoring.list_runs(engine)
    }
    return {"months": list(PLAN), "summaries": summaries, "checks": checks}


@pytest.fixture
def filled(pg_url: str, make_settings: Callable[..., Settings]) -> Iterator[dict[str, Any]]:
    cfg = make_settings(database_url=pg_url)
    engine = open_store(pg_url)
    info = fill_store(cfg, engine)
    yield {"engine": engine, **info}
    engine.dispose()


def _targets() -> list[tuple[str, dict[str, Any]]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(p["title"], t) for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_and_provisioning_files_are_consistent() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/postgres.yaml").read_text())
    [ds] = datasource["datasources"]
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["url"] == "${GRAFANA_POSTGRES_ADDR}" and "${" in ds["secureJsonData"]["password"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yaml").read_text())
    assert providers["providers"][0]["type"] == "file"
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"]) == 9
    for title, target in _targets():
        assert target["datasource"]["uid"] == ds["uid"], title
        assert "$__" not in target["rawSql"], f"{title}: macros cannot be tested here"


def test_every_panel_query_returns_rows_of_the_expected_shape(filled) -> None:
    engine: Engine = filled["engine"]
    months = filled["months"]
    checked = sorted(filled["checks"])
    assert filled["checks"]["2025-03"]["verdict"] == "retrain"
    for title, target in _targets():
        with engine.connect() as conn:
            result = conn.execute(text(target["rawSql"]))
            columns, rows = list(result.keys()), result.fetchall()
        assert rows, f"{title} ({target['refId']}) returned no rows"
        if target["format"] == "table":
            assert columns == TABLE_COLUMNS[title], title
            continue
        assert columns[0] == "time", title
        assert all(isinstance(r[0], dt.datetime) and r[0].tzinfo is not None for r in rows)
        stamps = sorted({r[0].strftime("%Y-%m") for r in rows})
        assert stamps in (months, checked), (title, stamps)
        if columns[1:] == ["metric", "value"]:
            assert all(isinstance(r[1], str) and isinstance(r[2], float) for r in rows), title
        else:
            assert len(columns) == 2 and all(isinstance(r[1], float | int) for r in rows), title


def test_panel_values_match_the_package(filled) -> None:
    engine: Engine = filled["engine"]
    queries = {f"{title}/{t['refId']}": t["rawSql"] for title, t in _targets()}
    with engine.connect() as conn:
        share = dict(
            (r[0].strftime("%Y-%m"), r[1])
            for r in conn.execute(text(queries["Drifted-feature share per month/A"]))
        )
        mix = conn.execute(text(queries["Persona mix over time/A"])).fetchall()
        champion = conn.execute(text(queries["Model version in production/A"])).first()
        per_feature = conn.execute(text(queries["Per-feature drift (K-S p-value, log scale)/A"]))
        feature_rows = per_feature.fetchall()
        rejected = {
            r[0].strftime("%Y-%m"): r[1]
            for r in conn.execute(text(queries["Rejected rows per month/A"]))
        }
    for month, check in filled["checks"].items():
        assert share[month] == pytest.approx(check["drift_share"])
    for month in filled["months"]:
        total = sum(r[2] for r in mix if r[0].strftime("%Y-%m") == month)
        assert total == pytest.approx(1.0)
    # March drifted: the cycle promoted v2, which is in production at the end of the run.
    assert [s["verdict"] for s in filled["summaries"]].count("retrain") == 1
    assert champion is not None and champion[0] == "2"
    assert len(feature_rows) == 10 * len(filled["checks"])
    assert rejected == {month: REJECTS.get(month, 0) for month in filled["months"]}
