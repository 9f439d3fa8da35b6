"""Survey months: the `Month` and `Window` values, parsed once at the edges, and their arithmetic.

A `Month` is a `str` (``"2025-03"``) that is known to be valid: it sorts, compares, goes into
SQL parameters and JSON as the text it is, and a function that takes a `Month` never checks
it again. Edges (CLI options, HTTP bodies, files, settings) call `parse_month` /
`parse_window`; everything below them passes the values on.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from persona.errors import PersonaError

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class MonthError(PersonaError):
    """A survey month is not in `YYYY-MM` form."""


class Month(str):
    """A valid survey month, ``YYYY-MM``; a `str` that is checked once, when it is made.

    ``Month("2025-03")`` raises `MonthError` for anything that is not ``YYYY-MM`` (surrounding
    blanks are stripped). Order, equality and hashing are the text's, so a `Month` equals
    the plain string of the same month.
    """

    __slots__ = ()

    def __new__(cls, value: object) -> Month:
        """Check `value` (``YYYY-MM``, blanks stripped) and make the month."""
        if isinstance(value, Month):
            return value
        text = str(value).strip()
        if not _MONTH.match(text):
            raise MonthError(f"invalid month {value!r}: expected YYYY-MM, e.g. 2025-03")
        return super().__new__(cls, text)

    @property
    def year(self) -> int:
        """The calendar year."""
        return int(self[:4])

    @property
    def number(self) -> int:
        """The month of the year, 1-12."""
        return int(self[5:7])

    def add(self, delta: int) -> Month:
        """The month `delta` months after (before, if negative) this one."""
        index = self.year * 12 + (self.number - 1) + delta
        return Month(f"{index // 12:04d}-{index % 12 + 1:02d}")

    @classmethod
    def of_date(cls, when: dt.date) -> Month:
        """The month a date falls in."""
        return cls(f"{when.year:04d}-{when.month:02d}")


@dataclass(frozen=True)
class Window:
    """Distinct survey months in ascending order (a reference or training window).

    Attributes:
        months: The months, sorted, no repeats (`Window.of` sorts and de-duplicates).
    """

    months: tuple[Month, ...]

    def __post_init__(self) -> None:
        if list(self.months) != sorted(set(self.months)):
            raise MonthError(f"window months must be distinct and ascending, got {self.months}")

    @classmethod
    def of(cls, months: Iterable[str]) -> Window:
        """A window of the given months (each checked), sorted and de-duplicated."""
        return cls(tuple(sorted({Month(m) for m in months})))

    def __iter__(self) -> Iterator[Month]:
        return iter(self.months)

    def __len__(self) -> int:
        return len(self.months)

    def __bool__(self) -> bool:
        return bool(self.months)

    def __str__(self) -> str:
        return ",".join(self.months)

    @property
    def first(self) -> Month:
        """The earliest month (the window must not be empty)."""
        return self.months[0]

    @property
    def last(self) -> Month:
        """The latest month (the window must not be empty)."""
        return self.months[-1]

    def to_list(self) -> list[str]:
        """The months as plain strings, for JSON and SQL ``IN`` lists."""
        return [str(m) for m in self.months]


def parse_month(value: object) -> Month:
    """Validate a survey month typed by a person or read from a file (an edge).

    Args:
        value: A month such as ``"2025-03"``.

    Returns:
        The `Month`.

    Raises:
        MonthError: The value is not a `YYYY-MM` month.
    """
    return Month(value)


def parse_window(text: str | None) -> Window | None:
    """Parse a comma-separated month list such as ``"2025-01,2025-02"`` (an edge).

    Args:
        text: The list as typed (``--reference``); None or blank means "not given".

    Returns:
        The window, or None when nothing was given.

    Raises:
        MonthError: A month is not ``YYYY-MM``.
    """
    if text is None or not text.strip():
        return None
    return Window.of(part.strip() for part in text.split(",") if part.strip())


def month_range(first: str, last: str) -> list[Month]:
    """Return every month from `first` to `last` inclusive (empty if last < first)."""
    months = []
    current, end = Month(first), Month(last)
    while current <= end:
        months.append(current)
        current = current.add(1)
    return months


def resolve_month(month: str | None, run_date: str | None = None) -> Month:
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
    return Month.of_date(when).add(-1)
