"""The `Month` and `Window` values: checked once when made, then plain text everywhere."""

from __future__ import annotations

import json
import pickle

import pytest

from persona.errors import NotIngestedError, StoreError
from persona.months import Month, MonthError, Window, parse_window


def test_month_is_validated_text() -> None:
    month = Month(" 2025-03 ")
    assert month == "2025-03" and isinstance(month, str)
    assert (month.year, month.number) == (2025, 3)
    assert json.dumps({"m": month}) == '{"m": "2025-03"}'
    assert pickle.loads(pickle.dumps(month)) == month
    assert Month(month) is month


@pytest.mark.parametrize("bad", ["2025-13", "2025-3", "25-03", "", "2025-00", "march"])
def test_month_refuses_bad_text(bad: str) -> None:
    with pytest.raises(MonthError, match="expected YYYY-MM"):
        Month(bad)


def test_month_arithmetic_crosses_years() -> None:
    assert Month("2025-01").add(-1) == "2024-12"
    assert Month("2024-12").add(13) == "2026-01"


def test_window_sorts_and_deduplicates() -> None:
    window = parse_window("2025-02, 2025-01,2025-02")
    assert window is not None
    assert window.to_list() == ["2025-01", "2025-02"]
    assert str(window) == "2025-01,2025-02"
    assert (window.first, window.last, len(window)) == ("2025-01", "2025-02", 2)
    assert parse_window("  ") is None
    with pytest.raises(MonthError):
        Window((Month("2025-02"), Month("2025-01")))


def test_not_ingested_names_the_months() -> None:
    err = NotIngestedError(["2025-01"], "training")
    assert isinstance(err, StoreError)
    assert str(err) == "no survey rows for month 2025-01 for training: ingest it first"
    assert "no survey month is ingested" in str(NotIngestedError())
