"""store.survey_ingest and survey_queries on the real PostgreSQL (COPY fast path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from persona.errors import DataValidationError, StoreError
from persona.store import survey_delivery, survey_ingest, survey_queries
from persona.store.engine import open_store, utcnow
from persona.store.schema import ingest_batches, survey_responses
from persona.synth import default_year, generate_month, write_month

pytestmark = pytest.mark.postgres

# The bad-input cases are shared with the SQLite tests (one definition of each case).
_spec = importlib.util.spec_from_file_location(
    "_survey_cases", Path(__file__).resolve().parents[1] / "unit" / "test_store_surveys.py"
)
assert _spec and _spec.loader
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
COLUMNS = cases.COLUMNS


def stored(engine: Engine) -> list[dict[str, object]]:
    """The stored months as their JSON form."""
    return [m.to_dict() for m in survey_queries.list_months(engine)]


@pytest.fixture
def engine(pg_url: str) -> Engine:
    engine = open_store(pg_url)
    assert engine.dialect.name == "postgresql"
    yield engine
    engine.dispose()


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(survey_responses)).scalar_one()
        batches = conn.execute(select(func.count()).select_from(ingest_batches)).scalar_one()
    return int(rows), int(batches)


def test_every_bad_input_is_a_clear_error_and_writes_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    for name, (path, error, message) in cases.bad_files(tmp_path).items():
        with pytest.raises(error) as info:
            survey_ingest.ingest_file(engine, path)
        assert message in str(info.value), name
        assert _counts(engine) == (0, 0), name
    with pytest.raises(DataValidationError, match="does not match"):
        good = write_month(cases.CATALOG, "2025-03", 5, tmp_path / "ok", formats=("csv",))
        survey_ingest.ingest_file(engine, good.files["csv"], month="2025-04")
    assert _counts(engine) == (0, 0)


def test_generated_year_loads_back_equal_and_reingest_is_a_no_op(
    engine: Engine, tmp_path: Path
) -> None:
    plan = default_year(n=300)
    for p in plan:
        info = write_month(cases.CATALOG, p.month, p.n, tmp_path, p.scenario, seed=42)
        result = survey_ingest.ingest_file(engine, info.files["csv"])
        assert (result.rows_new, result.already_ingested) == (300, False)
    assert stored(engine) == [{"month": p.month, "rows": 300} for p in plan]
    march = survey_queries.load_month(engine, "2025-03")
    expected, _ = generate_month(cases.CATALOG, "2025-03", 300, "spread", seed=42)
    pd.testing.assert_frame_equal(march[COLUMNS].reset_index(drop=True), expected)
    assert march["response_id"].is_monotonic_increasing
    fingerprint = survey_queries.month_fingerprint(engine, ["2025-01", "2025-02"])
    again = survey_ingest.ingest_file(engine, tmp_path / "survey_2025-03.csv")
    assert again.already_ingested and again.rows_new == 0
    parquet = survey_ingest.ingest_file(engine, tmp_path / "survey_2025-03.parquet")
    assert (parquet.already_ingested, parquet.rows_new, parquet.rows_skipped) == (False, 0, 300)
    assert _counts(engine) == (1500, 6)
    assert survey_queries.month_fingerprint(engine, ["2025-02", "2025-01"]) == fingerprint
    window = survey_queries.load_months(engine, ["2025-01", "2025-02"])
    assert window["survey_month"].value_counts().to_dict() == {"2025-01": 300, "2025-02": 300}


def test_same_fingerprint_as_sqlite_for_the_same_files(engine: Engine, tmp_path: Path) -> None:
    info = write_month(cases.CATALOG, "2025-01", 50, tmp_path, seed=1)
    lite = open_store(f"sqlite:///{tmp_path}/lite.db")
    for target in (engine, lite):
        survey_ingest.ingest_file(target, info.files["csv"])
    assert survey_queries.month_fingerprint(
        engine, ["2025-01"]
    ) == survey_queries.month_fingerprint(lite, ["2025-01"])
    pd.testing.assert_frame_equal(
        survey_queries.load_month(engine, "2025-01")[COLUMNS],
        survey_queries.load_month(lite, "2025-01")[COLUMNS],
    )


def test_partial_overlap_skips_and_counts(engine: Engine) -> None:
    survey, _ = generate_month(cases.CATALOG, "2025-02", 100, seed=3)
    survey_ingest.ingest_frame(engine, survey.iloc[:70])
    result = survey_ingest.ingest_frame(engine, survey.iloc[50:])
    assert (result.rows, result.rows_new, result.rows_skipped) == (50, 30, 20)
    assert stored(engine) == [{"month": "2025-02", "rows": 100}]


def test_a_failure_after_copy_rolls_everything_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    survey, _ = generate_month(cases.CATALOG, "2025-02", 40, seed=3)
    real = survey_delivery._copy_postgres

    def copy_then_fail(*args: Any) -> int:
        assert real(*args) == 40  # COPY + INSERT ... SELECT ran inside the transaction
        raise psycopg2.OperationalError("connection lost (simulated)")

    monkeypatch.setattr(survey_delivery, "_copy_postgres", copy_then_fail)
    with pytest.raises(StoreError, match=r"nothing written.*simulated"):
        survey_ingest.ingest_frame(engine, survey)
    assert _counts(engine) == (0, 0)
    monkeypatch.setattr(survey_delivery, "_copy_postgres", real)
    assert survey_ingest.ingest_frame(engine, survey).rows_new == 40  # no staging table left over
    with engine.connect() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_class WHERE relname = 'persona_ingest_staging'"
        ).scalar_one()
    assert left == 0


def test_binary_copy_round_trips_ids_floats_and_time_on_both_paths(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona.store import survey_write

    monkeypatch.setattr(survey_write, "_COPY_BATCH_ROWS", 3)  # many COPY batches
    survey, _ = generate_month(cases.CATALOG, "2025-02", 10, seed=5)
    survey["respondent_id"] = ["z", "b" * 64, "émile-ß", "7", "a b", "ü" * 64, "10", "-", "q", "x"]
    survey.loc[0, "x1"] = -0.0
    survey.loc[1, "x2"] = 5e-324
    survey.loc[2, "x3"] = -99.99999999999999
    first = survey_ingest.ingest_frame(engine, survey.iloc[:6])  # new month: straight COPY
    second = survey_ingest.ingest_frame(engine, survey.iloc[4:])  # month has rows: staging
    assert (first.rows_new, second.rows_new, second.rows_skipped) == (6, 4, 2)
    loaded = survey_queries.load_month(engine, "2025-02")
    pd.testing.assert_frame_equal(loaded[COLUMNS].reset_index(drop=True), survey, check_exact=True)
    assert str(loaded.loc[0, "x1"]) == "-0.0"
    with engine.connect() as conn:
        times = conn.execute(
            select(survey_responses.c.ingested_at, ingest_batches.c.ingested_at)
            .join(ingest_batches, ingest_batches.c.batch_id == survey_responses.c.batch_id)
            .order_by(survey_responses.c.response_id)
        ).all()
    assert len(times) == 10 and all(row == batch for row, batch in times)
    assert times[0][0].utcoffset() is not None


def test_schema_has_no_batch_foreign_key_but_keeps_uniqueness_and_month_index(
    engine: Engine,
) -> None:
    from sqlalchemy import inspect

    found = inspect(engine)
    assert found.get_foreign_keys("survey_responses") == []
    assert found.get_foreign_keys("persona_assignments") == []  # checked by one anti-join
    unique = found.get_unique_constraints("survey_responses")
    assert [u["column_names"] for u in unique] == [["respondent_id", "survey_month"]]
    indexes = found.get_indexes("survey_responses")
    assert ["survey_month"] in [i["column_names"] for i in indexes]
    survey, _ = generate_month(cases.CATALOG, "2025-02", 5, seed=3)
    batch = survey_ingest.ingest_frame(engine, survey).batch_id
    row = {"respondent_id": survey.loc[0, "respondent_id"], "survey_month": "2025-02"}
    row |= {f"x{i}": 0.0 for i in range(1, 11)} | {"batch_id": batch}
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the database still refuses
        conn.execute(survey_responses.insert().values(**row, ingested_at=utcnow()))
