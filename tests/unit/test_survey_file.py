"""persona.survey_file without a database: strict CSV / Parquet reading and its messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from persona.catalog import load_catalog
from persona.errors import DataValidationError, IngestError
from persona.features import FEATURE_NAMES
from persona.months import Month
from persona.survey_file import check_delimiter, check_text, read_csv_file, read_parquet_file
from persona.synth import generate_month

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml")


@pytest.fixture
def text() -> str:
    survey, _ = generate_month(CATALOG, Month("2025-03"), 5, seed=3)
    return str(survey.to_csv(index=False))


def test_csv_reads_with_float_features_raw_bytes_and_file_line_numbers(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "s.csv"
    path.write_text(text.replace("\n", "\n\n", 1))  # an empty line after the header
    frame, content, renumber = read_csv_file(path)
    assert content == path.read_bytes() and len(frame) == 5
    assert all(frame[name].dtype == np.float64 for name in FEATURE_NAMES)
    assert [renumber(i) for i in range(3)] == [3, 4, 5]  # line 1 header, line 2 empty


def test_a_text_cell_makes_every_column_text_for_validation_to_name(
    tmp_path: Path, text: str
) -> None:
    lines = text.splitlines()
    cells = lines[2].split(",")
    cells[4] = "abc"
    path = tmp_path / "s.csv"
    path.write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n")
    frame, _, _ = read_csv_file(path)
    assert frame["x3"].iloc[1] == "abc"


def test_bad_lines_are_listed_by_file_line(tmp_path: Path, text: str) -> None:
    lines = text.splitlines()
    path = tmp_path / "s.csv"
    path.write_text("\n".join([*lines[:3], lines[3][:20], *lines[4:]]) + "\n")
    with pytest.raises(DataValidationError, match="line 4 has 2 fields, expected 12"):
        read_csv_file(path)


def test_files_that_are_not_utf8_comma_csv_are_named(tmp_path: Path, text: str) -> None:
    with pytest.raises(IngestError, match="UTF-16"):
        check_text(tmp_path / "a.csv", b"\xff\xfe" + text.encode("utf-16-le"))
    with pytest.raises(IngestError, match="NUL byte at offset 6"):
        check_text(tmp_path / "a.csv", b"abcdef\x00ghijkl")
    with pytest.raises(IngestError, match="not UTF-8"):
        check_text(tmp_path / "a.csv", b"caf\xe9, ok\n" * 3)
    with pytest.raises(IngestError, match="semicolons"):
        check_delimiter(tmp_path / "a.csv", ["respondent_id;x1;x2"])
    check_delimiter(tmp_path / "a.csv", ["respondent_id", "x1"])  # commas: fine
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match="empty"):
        read_csv_file(empty)


def test_parquet_reads_with_rows_numbered_from_one(tmp_path: Path) -> None:
    survey, _ = generate_month(CATALOG, Month("2025-03"), 4, seed=3)
    path = tmp_path / "s.parquet"
    survey.to_parquet(path, index=False)
    frame, content, renumber = read_parquet_file(path)
    assert len(frame) == 4 and content == path.read_bytes() and renumber(0) == 1
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(IngestError, match="cannot read as Parquet"):
        read_parquet_file(tmp_path / "bad.parquet")
