"""features: one validation for frames, records and arrays, with row and column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from persona.errors import DataValidationError
from persona.features import (
    FEATURE_NAMES,
    Bounds,
    check_columns,
    validate_array,
    validate_frame,
    validate_records,
)


def _frame(rows: int = 4) -> pd.DataFrame:
    values = np.arange(rows * 10, dtype=np.float64).reshape(rows, 10) / 10
    return pd.DataFrame(values, columns=list(FEATURE_NAMES))


def _issues(exc: pytest.ExceptionInfo[DataValidationError]) -> list[tuple]:
    return [(i.row, i.column, i.message) for i in exc.value.issues]


def test_valid_frame_returns_float64_in_schema_order() -> None:
    frame = _frame()[list(reversed(FEATURE_NAMES))]
    frame["respondent_id"] = ["a", "b", "c", "d"]
    out = validate_frame(frame, allowed_extra=["respondent_id"])
    assert out.dtype == np.float64 and out.shape == (4, 10)
    assert out[1].tolist() == _frame().iloc[1].tolist()


def test_missing_and_extra_columns_are_listed() -> None:
    frame = _frame().drop(columns=["x3"]).assign(age=1)
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame)
    assert _issues(info) == [
        (None, "x3", "missing feature column"),
        (None, "age", "unexpected column"),
    ]


def test_text_cells_report_row_and_column() -> None:
    frame = _frame().astype(object)
    frame.loc[2, "x5"] = "abc"
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame, what="march file")
    assert _issues(info) == [(2, "x5", "not a number: 'abc'")]
    assert "invalid march file" in str(info.value)


def test_booleans_are_not_numbers() -> None:
    frame = _frame()
    frame["x1"] = [True, False, True, False]
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame)
    assert {(i.row, i.column) for i in info.value.issues} == {(r, "x1") for r in range(4)}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "value is NaN or empty"),
        (math.inf, "value is not finite (inf)"),
        (-math.inf, "value is not finite (-inf)"),
        (150.0, "value 150 outside [-100, 100]"),
    ],
)
def test_bad_values_report_row_and_column(value: float, message: str) -> None:
    frame = _frame()
    frame.loc[3, "x10"] = value
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame)
    assert _issues(info) == [(3, "x10", message)]


def test_bounds_are_configurable() -> None:
    frame = _frame()
    validate_frame(frame, bounds=Bounds(0, 4))
    with pytest.raises(DataValidationError, match=r"value 3.9 outside \[0, 3\]"):
        validate_frame(frame, bounds=Bounds(0, 3))


def test_issue_list_is_limited_but_total_counts_everything() -> None:
    frame = _frame(30)
    frame["x2"] = math.nan
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame, limit=5)
    assert len(info.value.issues) == 5 and info.value.total == 30
    assert "and 25 more" in str(info.value)
    assert info.value.to_dict()["total"] == 30


def test_records_report_every_kind_of_problem() -> None:
    good = {name: 1.0 for name in FEATURE_NAMES}
    records = [
        good,
        {**good, "x2": "high"},
        {**good, "x3": None},
        {**good, "x4": True},
        {k: v for k, v in good.items() if k != "x5"},
        {**good, "extra": 1},
        [1, 2, 3],
    ]
    with pytest.raises(DataValidationError) as info:
        validate_records(records)
    found = {(i.row, i.column): i.message for i in info.value.issues}
    assert found[(1, "x2")] == "expected a number, got a string 'high'"
    assert found[(2, "x3")] == "expected a number, got null"
    assert found[(3, "x4")] == "expected a number, got a boolean"
    assert found[(4, "x5")] == "missing feature"
    assert found[(5, "extra")] == "unexpected field"
    assert found[(6, None)] == "expected an object keyed by feature, got an array"


def test_records_check_values_after_types() -> None:
    records = [{name: 0 for name in FEATURE_NAMES}, {name: 1e9 for name in FEATURE_NAMES}]
    with pytest.raises(DataValidationError) as info:
        validate_records(records)
    assert info.value.issues[0].row == 1 and info.value.total == 10
    assert validate_records(records[:1]).tolist() == [[0.0] * 10]


def test_array_shape_and_values() -> None:
    assert validate_array([[0.5] * 10]).shape == (1, 10)
    with pytest.raises(DataValidationError, match=r"expected shape \(rows, 10\)"):
        validate_array([[1.0] * 9])
    with pytest.raises(DataValidationError, match="not numeric"):
        validate_array([["a"] * 10])
    with pytest.raises(DataValidationError) as info:
        validate_array([[0.0] * 9 + [math.nan]])
    assert _issues(info) == [(0, "x10", "value is NaN or empty")]


def test_check_columns_allows_named_extras() -> None:
    assert check_columns([*FEATURE_NAMES, "respondent_id"], ["respondent_id"]) == []


def test_validate_records_huge_integer_is_a_row_issue_not_a_crash() -> None:
    from persona.errors import DataValidationError
    from persona.features import FEATURE_NAMES, validate_records

    record = {name: 1.0 for name in FEATURE_NAMES}
    record["x3"] = 10**400
    with pytest.raises(DataValidationError) as info:
        validate_records([record])
    assert [(i.row, i.column) for i in info.value.issues] == [(0, "x3")]
