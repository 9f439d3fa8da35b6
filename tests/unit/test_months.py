"""months: the YYYY-MM format and month arithmetic."""

from __future__ import annotations

import pytest

from persona.months import Month, MonthError, month_range, parse_month


@pytest.mark.parametrize("text", ["2025-01", "2025-12", " 2025-03 ", "1999-10"])
def test_parse_month_accepts_yyyy_mm(text: str) -> None:
    assert parse_month(text) == text.strip()


@pytest.mark.parametrize(
    "text", ["2025-1", "2025-13", "2025-00", "25-01", "2025/01", "", "2025-01-01"]
)
def test_parse_month_rejects_other_forms_with_the_value_in_the_message(text: str) -> None:
    with pytest.raises(MonthError, match="expected YYYY-MM") as info:
        parse_month(text)
    assert repr(text) in str(info.value)


def test_month_add_crosses_year_boundaries_both_ways() -> None:
    assert Month("2025-12").add(1) == "2026-01"
    assert Month("2025-01").add(-1) == "2024-12"
    assert Month("2025-03").add(0) == "2025-03"
    assert Month("2025-03").add(25) == "2027-04"


def test_month_range_is_inclusive_and_empty_when_reversed() -> None:
    assert month_range("2024-11", "2025-02") == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert month_range("2025-03", "2025-03") == ["2025-03"]
    assert month_range("2025-05", "2025-01") == []
    with pytest.raises(MonthError):
        month_range("2025-5", "2025-06")


def test_parse_window_sorts_dedupes_and_validates() -> None:
    from persona.months import MonthError, parse_window

    assert parse_window(None) is None and parse_window("  ") is None
    window = parse_window("2025-02, 2025-01,2025-02,")
    assert window is not None and window.to_list() == ["2025-01", "2025-02"]
    with pytest.raises(MonthError, match="2025-13"):
        parse_window("2025-01,2025-13")
