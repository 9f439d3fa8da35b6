"""store.survey_ingest and survey_queries on SQLite: validated, idempotent ingest; loads."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import Engine, func, select

from persona.catalog import load_catalog
from persona.errors import DataValidationError, IngestError, PersonaError, StoreError
from persona.features import FEATURE_NAMES, Bounds
from persona.store import survey_delivery, survey_ingest, survey_queries
from persona.store.engine import open_store
from persona.store.schema import ingest_batches, survey_responses
from persona.synth import generate_month, write_month

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml")
COLUMNS = ["respondent_id", "survey_month", *FEATURE_NAMES]


def stored(engine: Engine) -> list[dict[str, object]]:
    """The stored months as their JSON form."""
    return [m.to_dict() for m in survey_queries.list_months(engine)]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path}/store.db")


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(survey_responses)).scalar_one()
        batches = conn.execute(select(func.count()).select_from(ingest_batches)).scalar_one()
    return int(rows), int(batches)


def bad_files(folder: Path) -> dict[str, tuple[Path, type[PersonaError], str]]:
    """Every bad-input case: name -> (file, error type, expected message fragment)."""
    survey, _ = generate_month(CATALOG, "2025-03", 8, seed=1)
    lines = survey.to_csv(index=False).splitlines()
    cells = [line.split(",") for line in lines]

    def edit(row: int, col: int, value: str) -> list[str]:
        out = [list(c) for c in cells]
        out[row][col] = value
        return [",".join(c) for c in out]

    cases: dict[str, tuple[list[str], type[PersonaError], str]] = {
        "nan": (edit(3, 4, ""), DataValidationError, "row 4, column 'x3': value is NaN or empty"),
        "nan_text": (edit(4, 5, "NaN"), DataValidationError, "row 5, column 'x4': value is NaN"),
        "text": (edit(5, 6, "abc"), DataValidationError, "row 6, column 'x5': not a number: 'abc'"),
        "missing_column": (
            [",".join(c[:-1]) for c in cells],
            DataValidationError,
            "column 'x10': missing feature column",
        ),
        "extra_column": (
            [line + (",age" if i == 0 else ",33") for i, line in enumerate(lines)],
            DataValidationError,
            "column 'age': unexpected column",
        ),
        "duplicate": (
            [*lines, lines[2]],
            DataValidationError,
            "row 10, column 'respondent_id': "
            "duplicate respondent_id '202503-000002' (first at row 3)",
        ),
        "empty": ([], IngestError, "the file is empty (no header line)"),
        "header_only": (lines[:1], IngestError, "has a header but no data rows"),
        "truncated": (
            [*lines[:-1], lines[-1][:25]],
            DataValidationError,
            "line 9 has 3 fields, expected 12",
        ),
        "month_format": (
            edit(2, 1, "2025-3"),
            DataValidationError,
            "row 3, column 'survey_month': invalid month '2025-3': expected YYYY-MM",
        ),
        "month_mixed": (
            edit(6, 1, "2025-04"),
            DataValidationError,
            "survey_month '2025-04' does not match",
        ),
        "out_of_range": (
            edit(7, 11, "1e6"),
            DataValidationError,
            "row 8, column 'x10': value 1e+06 outside",
        ),
        "empty_id": (
            edit(8, 0, ""),
            DataValidationError,
            "row 9, column 'respondent_id': respondent_id is empty",
        ),
    }
    out = {}
    for name, (content, error, message) in cases.items():
        path = folder / f"survey_{name}.csv"
        path.write_text("\n".join(content) + ("\n" if content and name != "truncated" else ""))
        out[name] = (path, error, message)
    return out


def test_bad_files_write_nothing(engine: Engine, tmp_path: Path) -> None:
    for name, (path, error, message) in bad_files(tmp_path).items():
        with pytest.raises(error) as info:
            survey_ingest.ingest_file(engine, path)
        assert message in str(info.value), name
        if error is DataValidationError and info.value.issues[0].row is not None:
            assert "rows are file line numbers; line 1 is the header" in str(info.value), name
        assert counts(engine) == (0, 0), name


def test_month_argument_is_checked_and_must_agree(engine: Engine, tmp_path: Path) -> None:
    path = Path(write_month(CATALOG, "2025-03", 5, tmp_path, formats=("csv",)).files["csv"])
    with pytest.raises(
        DataValidationError, match=r"does not match the month being ingested .2025-04"
    ) as info:
        survey_ingest.ingest_file(engine, path, month="2025-04")
    assert info.value.total == 5
    assert counts(engine) == (0, 0)
    assert survey_ingest.ingest_file(engine, path, month="2025-03").rows_new == 5


def test_month_from_argument_when_the_file_has_no_month_column(
    engine: Engine, tmp_path: Path
) -> None:
    survey, _ = generate_month(CATALOG, "2025-02", 6, seed=2)
    path = tmp_path / "no_month.csv"
    survey.drop(columns=["survey_month"]).to_csv(path, index=False)
    with pytest.raises(IngestError, match="no survey month"):
        survey_ingest.ingest_file(engine, path)
    result = survey_ingest.ingest_file(engine, path, month="2025-02")
    assert (result.month, result.rows_new) == ("2025-02", 6)


def test_csv_and_parquet_load_back_equal_and_are_idempotent(engine: Engine, tmp_path: Path) -> None:
    files = write_month(CATALOG, "2025-01", 200, tmp_path, seed=7).files
    first = survey_ingest.ingest_file(engine, files["csv"])
    assert (first.rows, first.rows_new, first.rows_skipped, first.already_ingested) == (
        200,
        200,
        0,
        False,
    )
    again = survey_ingest.ingest_file(engine, files["csv"])
    assert again.already_ingested and again.rows_new == 0 and again.batch_id == first.batch_id
    other_format = survey_ingest.ingest_file(engine, files["parquet"])
    assert (other_format.already_ingested, other_format.rows_new, other_format.rows_skipped) == (
        False,
        0,
        200,
    )
    assert counts(engine) == (200, 2)
    loaded = survey_queries.load_month(engine, "2025-01")
    survey, _ = generate_month(CATALOG, "2025-01", 200, seed=7)
    assert list(loaded.columns) == ["response_id", *COLUMNS]
    assert loaded["response_id"].is_monotonic_increasing
    pd.testing.assert_frame_equal(loaded[COLUMNS].reset_index(drop=True), survey)


def test_overlapping_frame_skips_existing_rows_and_counts_them(engine: Engine) -> None:
    survey, _ = generate_month(CATALOG, "2025-02", 100, seed=3)
    survey_ingest.ingest_frame(engine, survey.iloc[:60], source="part1")
    result = survey_ingest.ingest_frame(engine, survey.iloc[40:], source="part2")
    assert (result.rows, result.rows_new, result.rows_skipped) == (60, 40, 20)
    assert survey_ingest.ingest_frame(engine, survey.iloc[40:]).already_ingested
    assert stored(engine) == [{"month": "2025-02", "rows": 100}]


def test_frame_errors_use_zero_based_positions(engine: Engine) -> None:
    survey, _ = generate_month(CATALOG, "2025-02", 10, seed=3)
    survey.loc[4, "x2"] = float("inf")
    with pytest.raises(DataValidationError, match="0-based") as info:
        survey_ingest.ingest_frame(engine, survey)
    assert [(i.row, i.column) for i in info.value.issues] == [(4, "x2")]
    with pytest.raises(IngestError, match="no rows"):
        survey_ingest.ingest_frame(engine, survey.iloc[:0])


def test_parquet_errors_use_one_based_rows(engine: Engine, tmp_path: Path) -> None:
    survey, _ = generate_month(CATALOG, "2025-02", 10, seed=3)
    survey.loc[0, "x7"] = float("nan")
    path = tmp_path / "bad.parquet"
    survey.to_parquet(path)
    with pytest.raises(DataValidationError, match="numbered from 1") as info:
        survey_ingest.ingest_file(engine, path)
    assert [(i.row, i.column) for i in info.value.issues] == [(1, "x7")]


def test_error_limit_and_bounds_apply(engine: Engine) -> None:
    survey, _ = generate_month(CATALOG, "2025-02", 50, seed=3)
    survey["x1"] = 50.0
    with pytest.raises(DataValidationError) as info:
        survey_ingest.ingest_frame(engine, survey, bounds=Bounds(-60, 40), error_limit=3)
    assert len(info.value.issues) == 3 and info.value.total == 50
    assert survey_ingest.ingest_frame(engine, survey, bounds=Bounds(-60, 60)).rows_new == 50


def test_a_failure_mid_write_leaves_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    survey, _ = generate_month(CATALOG, "2025-02", 30, seed=3)
    real = survey_delivery._insert_sqlite

    def insert_then_fail(*args: Any) -> int:
        written = real(*args)
        assert written == 30  # the rows are in the transaction ...
        raise StoreError("disk full (simulated)")

    monkeypatch.setattr(survey_delivery, "_insert_sqlite", insert_then_fail)
    with pytest.raises(StoreError, match="simulated"):
        survey_ingest.ingest_frame(engine, survey)
    assert counts(engine) == (0, 0)  # ... and rolled back with the batch row
    monkeypatch.setattr(survey_delivery, "_insert_sqlite", real)
    assert survey_ingest.ingest_frame(engine, survey).rows_new == 30


def test_unknown_or_missing_files(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        survey_ingest.ingest_file(engine, tmp_path / "nope.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(IngestError, match="unsupported file type"):
        survey_ingest.ingest_file(engine, tmp_path / "data.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(IngestError, match="cannot read as Parquet"):
        survey_ingest.ingest_file(engine, tmp_path / "bad.parquet")


def test_months_windows_and_fingerprint(engine: Engine, tmp_path: Path) -> None:
    for month in ("2025-01", "2025-02", "2025-03"):
        survey_ingest.ingest_file(engine, write_month(CATALOG, month, 20, tmp_path).files["csv"])
    assert stored(engine) == [{"month": m, "rows": 20} for m in ("2025-01", "2025-02", "2025-03")]
    window = survey_queries.load_months(engine, ["2025-03", "2025-01"])
    assert window["survey_month"].tolist() == ["2025-01"] * 20 + ["2025-03"] * 20
    assert survey_queries.load_month(engine, "2024-12").empty
    print_a = survey_queries.month_fingerprint(engine, ["2025-01", "2025-02"])
    assert print_a == survey_queries.month_fingerprint(engine, ["2025-02", "2025-01"])
    assert print_a != survey_queries.month_fingerprint(engine, ["2025-01"])
    survey_ingest.ingest_file(engine, tmp_path / "survey_2025-01.parquet")  # same data, no new rows
    assert print_a == survey_queries.month_fingerprint(engine, ["2025-01", "2025-02"])
    extra, _ = generate_month(CATALOG, "2025-02", 25, seed=99)
    extra["respondent_id"] = [f"late-{i}" for i in range(25)]
    survey_ingest.ingest_frame(engine, extra)
    assert print_a != survey_queries.month_fingerprint(engine, ["2025-01", "2025-02"])


def test_store_reports_an_unreachable_database(
    tmp_path: Path, make_settings: Callable[..., Any]
) -> None:
    engine = open_store(f"sqlite:///{tmp_path}/x.db")
    (tmp_path / "x.db").unlink()
    (tmp_path / "x.db").mkdir()  # a folder where the database file should be
    engine.dispose()
    with pytest.raises(StoreError):
        survey_queries.list_months(engine)


@pytest.mark.parametrize(
    ("ids", "duplicate"),
    [
        (["a-1", "a-2", "a-10", "a-11"], None),  # numbered past the padding: (length, bytes)
        (["b", "a", "c"], None),  # unsorted: the hash-based check
        (["a", "b", "b", "c"], "duplicate respondent_id 'b' (first at row 1)"),
        (["a-9", "a-10", "a-9"], "duplicate respondent_id 'a-9' (first at row 0)"),
    ],
)
def test_respondent_ids_sorted_or_not_are_checked_for_duplicates(
    engine: Engine, ids: list[str], duplicate: str | None
) -> None:
    survey, _ = generate_month(CATALOG, "2025-02", len(ids), seed=3)
    survey["respondent_id"] = ids
    if duplicate is None:
        assert survey_ingest.ingest_frame(engine, survey).rows_new == len(ids)
        assert survey_queries.load_month(engine, "2025-02")["respondent_id"].tolist() == ids
    else:
        with pytest.raises(DataValidationError) as info:
            survey_ingest.ingest_frame(engine, survey)
        assert duplicate in str(info.value)
        assert counts(engine) == (0, 0)


def test_file_content_hash_is_sha256_of_month_and_bytes(engine: Engine, tmp_path: Path) -> None:
    """The idempotence key must not change: databases already hold it."""
    path = Path(write_month(CATALOG, "2025-03", 7, tmp_path, formats=("csv",)).files["csv"])
    expected = hashlib.sha256(b"file|2025-03|" + path.read_bytes()).hexdigest()
    assert survey_ingest.ingest_file(engine, path).content_hash == expected
    survey, _ = generate_month(CATALOG, "2025-03", 7)
    no_month = tmp_path / "no_month.csv"
    survey.drop(columns=["survey_month"]).to_csv(no_month, index=False)
    expected = hashlib.sha256(b"file|2025-03|" + no_month.read_bytes()).hexdigest()
    assert survey_ingest.ingest_file(engine, no_month, month="2025-03").content_hash == expected


def test_binary_copy_encoding_matches_the_postgresql_format() -> None:
    from persona.store.survey_write import _encode_rows

    ids = pa.chunked_array([["ab"], ["é"]])
    values = np.arange(20, dtype=np.float64).reshape(2, 10)
    data = _encode_rows(ids, values, 5, [b"2025-01"])
    first = struct.pack(">hi", 13, 2) + b"ab" + struct.pack(">iq", 8, 5)
    first += b"".join(struct.pack(">id", 8, v) for v in range(10)) + struct.pack(">i", 7)
    assert data.startswith(first + b"2025-01" + struct.pack(">hi", 13, 2) + "é".encode())
    assert len(data) == 2 * (2 + 6 + 12 + 10 * 12 + 11)
