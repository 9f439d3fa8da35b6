"""persona.survey_input without a database: validation, month resolution, content hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from persona.catalog import load_catalog
from persona.errors import DataValidationError, IngestError
from persona.features import DEFAULT_BOUNDS, FEATURE_NAMES
from persona.months import Month
from persona.survey_input import bytes_hash, frame_hash, validate_and_hash, validate_survey_frame
from persona.synth import generate_month

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml")


def survey(rows: int = 6) -> pd.DataFrame:
    frame, _ = generate_month(CATALOG, Month("2025-03"), rows, seed=3)
    return frame


def validate(frame: pd.DataFrame, month: Month | None = None) -> tuple[Month, object, np.ndarray]:
    return validate_survey_frame(frame, month, DEFAULT_BOUNDS, 20, "test", "0-based", int)


def test_a_valid_frame_gives_its_month_ids_and_float64_features() -> None:
    frame = survey()
    month, ids, values = validate(frame)
    assert month == "2025-03" and isinstance(month, Month)
    assert ids.to_pylist() == frame["respondent_id"].tolist()  # type: ignore[attr-defined]
    assert values.dtype == np.float64 and values.shape == (6, len(FEATURE_NAMES))
    np.testing.assert_array_equal(values, frame[list(FEATURE_NAMES)].to_numpy())


def test_the_month_comes_from_the_argument_when_there_is_no_column() -> None:
    frame = survey().drop(columns=["survey_month"])
    assert validate(frame, Month("2025-07"))[0] == "2025-07"
    with pytest.raises(IngestError, match="no survey month"):
        validate(frame)


def test_month_cells_are_checked_and_must_agree_with_the_argument() -> None:
    frame = survey()
    frame.loc[2, "survey_month"] = "2025-3"
    with pytest.raises(DataValidationError, match="row 2, column 'survey_month': invalid month"):
        validate(frame)
    with pytest.raises(DataValidationError, match="does not match the month being ingested"):
        validate(survey(), Month("2025-04"))


def test_every_problem_is_listed_with_its_row_up_to_the_limit() -> None:
    frame = survey()
    frame.loc[1, "respondent_id"] = ""
    frame.loc[3, "respondent_id"] = frame.loc[0, "respondent_id"]
    frame.loc[4, "x2"] = np.nan
    with pytest.raises(DataValidationError) as info:
        validate(frame)
    found = [(i.row, i.column) for i in info.value.issues]
    assert found == [(1, "respondent_id"), (3, "respondent_id"), (4, "x2")]
    assert "first at row 0" in info.value.issues[1].message
    with pytest.raises(DataValidationError, match="unexpected column"):
        validate(survey().assign(age=33))


def test_hashes_are_the_idempotence_keys() -> None:
    frame = survey()
    month = Month("2025-03")
    assert bytes_hash(b"abc", month) == hashlib.sha256(b"file|2025-03|abc").hexdigest()
    assert frame_hash(frame, month) == frame_hash(frame.copy(), month)
    assert frame_hash(frame, month) != frame_hash(frame, Month("2025-04"))
    limits, numbering = (DEFAULT_BOUNDS, 20), ("test", "0-based", int)
    got = validate_and_hash(frame, None, None, limits, numbering)
    assert got.month == month and got.content_hash == frame_hash(frame, month)
    content = frame.to_csv(index=False).encode()
    got = validate_and_hash(frame, None, content, limits, numbering)
    assert got.content_hash == bytes_hash(content, month)
