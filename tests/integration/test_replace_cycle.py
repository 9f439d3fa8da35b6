"""A replaced month's next cycle checks and relabels it (issue 25), on SQLite and PostgreSQL.

The demo's January and February go through the monthly cycle; a corrected February is
then ingested with ``--replace`` (two malformed rows let in by ``--max-bad-rows``): its
labels are dropped and its run marked stale, and the next `run-month` of February labels
every stored row again, records a fresh run and reports the rejected rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from persona import flows, registry
from persona.catalog import load_catalog
from persona.months import Month
from persona.settings import Settings
from persona.store import schema, survey_ingest
from persona.store.engine import open_store
from persona.survey_input import BadRowLimit
from persona.synth import generate_month

N = 300
FEB = Month("2025-02")


def _labels_and_actions(settings: Settings) -> tuple[int, list[str | None]]:
    engine = open_store(settings.database_url)
    runs = schema.monitoring_runs.c
    try:
        with engine.connect() as conn:
            labels = conn.execute(
                select(func.count()).where(schema.persona_assignments.c.survey_month == FEB)
            ).scalar_one()
            actions = conn.execute(
                select(runs.action_taken).where(runs.survey_month == FEB).order_by(runs.run_id)
            ).scalars()
            return int(labels), list(actions)
    finally:
        engine.dispose()


def _replace_february(settings: Settings, tmp_path: Path) -> survey_ingest.IngestResult:
    catalog = load_catalog(settings.persona_catalog)
    fixed, _ = generate_month(catalog, FEB, N, seed=7)
    fixed.loc[:49, "x2"] = fixed.loc[:49, "x2"] + 1.0  # the vendor's corrections
    fixed["x5"] = fixed["x5"].astype(object)
    fixed.loc[[10, 20], "x5"] = "n/a"  # two malformed rows
    path = tmp_path / "survey_2025-02_corrected.csv"
    fixed.to_csv(path, index=False)
    options = survey_ingest.IngestOptions(replace=True, bad_rows=BadRowLimit(2), actor="test")
    engine = open_store(settings.database_url)
    try:
        return survey_ingest.ingest_file(engine, path, options=options)
    finally:
        engine.dispose()


def _check(settings: Settings, tmp_path: Path) -> None:
    catalog = load_catalog(settings.persona_catalog)
    engine = open_store(settings.database_url)
    try:
        for month in ("2025-01", "2025-02"):
            frame, _ = generate_month(catalog, month, N, seed=7)
            survey_ingest.ingest_frame(engine, frame, month, f"synth-{month}")
        registry.bootstrap(settings, engine)
    finally:
        engine.dispose()
    flows.run_year(settings, [Month("2025-01"), FEB])
    assert _labels_and_actions(settings) == (N, ["none"])
    replaced = _replace_february(settings, tmp_path)
    assert (replaced.status, replaced.rows_new, replaced.rows_rejected) == ("replaced", N - 2, 2)
    assert _labels_and_actions(settings) == (0, ["stale:none"])
    summary = flows.run_month(settings, FEB).to_dict()
    assert summary["replayed"] is False and summary["rows"] == N - 2
    assert summary["labels_written"] == N - 2 and summary["rows_rejected"] == 2
    assert sum(summary["persona_mix"].values()) == N - 2
    assert _labels_and_actions(settings) == (N - 2, ["stale:none", summary["action"]])
    again = flows.run_month(settings, FEB).to_dict()  # the new state replays as before
    assert again["replayed"] is True and again["labels_written"] == 0
    assert _replace_february(settings, tmp_path).status == "already_ingested"
    assert _labels_and_actions(settings) == (N - 2, ["stale:none", summary["action"]])


@pytest.mark.slow
def test_replaced_month_is_relabelled_on_sqlite(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    _check(make_settings(), tmp_path)


@pytest.mark.slow
@pytest.mark.postgres
def test_replaced_month_is_relabelled_on_postgres(
    make_settings: Callable[..., Settings], pg_url: str, tmp_path: Path
) -> None:
    _check(make_settings(database_url=pg_url), tmp_path)
