"""The platform's exceptions: one base class, one subclass per kind of failure.

The CLI turns a `PersonaError` into a one-line message and exit code 2 (bad input or
setting) instead of a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class PersonaError(Exception):
    """Base class of every error the platform reports to a user."""


class SettingsError(PersonaError):
    """A setting is missing or invalid."""


class CatalogError(PersonaError):
    """The persona catalog file is missing or malformed."""


@dataclass(frozen=True)
class Issue:
    """One problem found in input data.

    Attributes:
        row: Zero-based row number in the input (None when the problem is not per row).
        column: Column or field name (None when the problem is about the whole row/file).
        message: What is wrong.
    """

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class DataValidationError(PersonaError):
    """Input data failed validation; `issues` lists every problem found (up to a limit).

    Attributes:
        summary: One line saying what was being validated.
        issues: The problems, each with row and column.
        total: How many problems there were in all (may exceed len(issues)).
    """

    summary: str
    issues: list[Issue] = field(default_factory=list)
    total: int = 0

    def __post_init__(self) -> None:
        self.total = max(self.total, len(self.issues))
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.summary}: {self.total} problem(s)"]
        lines += [f"  - {issue}" for issue in self.issues]
        if self.total > len(self.issues):
            lines.append(f"  ... and {self.total - len(self.issues)} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "error": self.summary,
            "total": self.total,
            "issues": [issue.to_dict() for issue in self.issues],
        }


class IngestError(PersonaError):
    """A survey file could not be ingested (unreadable, empty, wrong month...)."""


class StoreError(PersonaError):
    """The survey store cannot be reached or holds unexpected data."""


class ModelError(PersonaError):
    """A model cannot be built, trained or loaded."""


class RegistryError(PersonaError):
    """An MLflow registry operation failed (unknown alias, version, gate refusal...)."""


class MonitoringError(PersonaError):
    """A monitoring check cannot run (missing reference, mismatched columns...)."""


class NotIngestedError(StoreError):
    """A survey month the work needs has no rows in the store: ingest it first.

    Attributes:
        months: The months that have no rows (empty: no month is ingested at all).
        purpose: What the months were needed for ("training", "the reference window"...).
    """

    def __init__(self, months: list[str] | tuple[str, ...] = (), purpose: str = "") -> None:
        self.months = tuple(str(m) for m in months)
        self.purpose = purpose
        what = f" for {purpose}" if purpose else ""
        if self.months:
            listed = ", ".join(self.months)
            noun, them = ("month", "it") if len(self.months) == 1 else ("months", "them")
            message = f"no survey rows for {noun} {listed}{what}: ingest {them} first"
        else:
            message = f"no survey month is ingested{what}: ingest data first"
        super().__init__(message)
