"""Survey months: the one format (`YYYY-MM`) and the arithmetic on it."""

from __future__ import annotations

import datetime as dt
import re

from persona.errors import PersonaError

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class MonthError(PersonaError):
    """A survey month is not in `YYYY-MM` form."""


def parse_month(value: str) -> str:
    """Validate a survey month.

    Args:
        value: A month such as ``"2025-03"``.

    Returns:
        The same month, stripped.

    Raises:
        MonthError: The value is not a `YYYY-MM` month.
    """
    text = str(value).strip()
    if not _MONTH.match(text):
        raise MonthError(f"invalid month {value!r}: expected YYYY-MM, e.g. 2025-03")
    return text


def add_months(month: str, delta: int) -> str:
    """Return the month `delta` months after (or before, if negative) `month`."""
    year, mon = (int(part) for part in parse_month(month).split("-"))
    index = year * 12 + (mon - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(first: str, last: str) -> list[str]:
    """Return every month from `first` to `last` inclusive (empty if last < first)."""
    months = []
    current = parse_month(first)
    end = parse_month(last)
    while current <= end:
        months.append(current)
        current = add_months(current, 1)
    return months


def parse_month_list(text: str | None) -> list[str] | None:
    """Parse a comma-separated month list such as ``"2025-01,2025-02"``.

    Args:
        text: The list as typed (``--reference``); None or blank means "not given".

    Returns:
        The distinct months, sorted, or None when nothing was given.

    Raises:
        MonthError: A month is not ``YYYY-MM``.
    """
    if text is None or not text.strip():
        return None
    return sorted({parse_month(part.strip()) for part in text.split(",") if part.strip()})


def resolve_month(month: str | None, run_date: str | None = None) -> str:
    """The month a scheduled run works on: `month`, or when empty the month before `run_date`.

    Schedulers (the Mage monthly trigger) run on the 2nd of a month for the month before;
    they pass an empty month and their execution date.

    Args:
        month: ``YYYY-MM``, or empty / None for "the month before `run_date`".
        run_date: ISO date or date-time (``2025-04-02 06:00:00+00:00``); default now (UTC).

    Returns:
        The month, ``YYYY-MM``.

    Raises:
        MonthError: `month` is not ``YYYY-MM`` or `run_date` is not an ISO date.
    """
    if month is not None and str(month).strip():
        return parse_month(month)
    if run_date is None or not str(run_date).strip():
        when = dt.datetime.now(dt.UTC)
    else:
        try:
            when = dt.datetime.fromisoformat(str(run_date).strip())
        except ValueError:
            raise MonthError(
                f"invalid run date {run_date!r}: expected an ISO date, e.g. 2025-04-02"
            ) from None
    return add_months(f"{when.year:04d}-{when.month:02d}", -1)
