"""The feature schema: ten numeric survey answers `x1`..`x10`, finite and within bounds.

Ingest, batch labeling and the REST API all validate through this module, so a value that
is refused in one place is refused everywhere, with the same message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from persona.errors import DataValidationError, Issue

if TYPE_CHECKING:  # pandas is imported where a frame is validated: the API never needs it
    import pandas as pd

FEATURE_NAMES: tuple[str, ...] = tuple(f"x{i}" for i in range(1, 11))
N_FEATURES = len(FEATURE_NAMES)
_FEATURE_SET = frozenset(FEATURE_NAMES)


@dataclass(frozen=True)
class Bounds:
    """Allowed range of every feature value (inclusive).

    Attributes:
        low: Smallest allowed value.
        high: Largest allowed value.
    """

    low: float = -100.0
    high: float = 100.0


DEFAULT_BOUNDS = Bounds()


def _raise(summary: str, issues: list[Issue], total: int, limit: int) -> None:
    if total:
        raise DataValidationError(summary, issues[:limit], total)


def check_columns(columns: Iterable[str], allowed_extra: Iterable[str] = ()) -> list[Issue]:
    """Report missing and unexpected columns.

    Args:
        columns: The column names present.
        allowed_extra: Non-feature columns that may be present (ids, month...).

    Returns:
        One issue per missing or unexpected column, in schema order.
    """
    present = list(columns)
    extra_ok = set(allowed_extra)
    issues = [
        Issue(None, name, "missing feature column") for name in FEATURE_NAMES if name not in present
    ]
    issues += [
        Issue(None, str(name), "unexpected column")
        for name in present
        if name not in _FEATURE_SET and name not in extra_ok
    ]
    return issues


def validate_array(
    values: Any, bounds: Bounds = DEFAULT_BOUNDS, limit: int = 20, what: str = "input"
) -> np.ndarray:
    """Validate a 2-D numeric array of features in schema order.

    Args:
        values: Array-like of shape (rows, 10).
        bounds: Allowed value range.
        limit: How many issues to list at most.
        what: Name of the input, used in the error summary.

    Returns:
        A C-contiguous float64 array of shape (rows, 10).

    Raises:
        DataValidationError: Wrong shape, non-numeric, NaN/inf or out-of-range values.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(
            f"invalid {what}", [Issue(None, None, f"not numeric: {exc}")]
        ) from None
    if array.ndim != 2 or array.shape[1] != N_FEATURES:
        raise DataValidationError(
            f"invalid {what}",
            [Issue(None, None, f"expected shape (rows, {N_FEATURES}), got {array.shape}")],
        )
    _check_values(array, bounds, limit, what)
    return np.ascontiguousarray(array)


def _check_values(array: np.ndarray, bounds: Bounds, limit: int, what: str) -> None:
    finite = np.isfinite(array)
    in_range = (array >= bounds.low) & (array <= bounds.high)
    bad = ~(finite & in_range)
    total = int(bad.sum())
    if not total:
        return
    rows, cols = np.nonzero(bad)
    issues = []
    for row, col in zip(rows[:limit], cols[:limit], strict=True):
        value = array[row, col]
        if math.isnan(value):
            message = "value is NaN or empty"
        elif not math.isfinite(value):
            message = f"value is not finite ({value})"
        else:
            message = f"value {value:g} outside [{bounds.low:g}, {bounds.high:g}]"
        issues.append(Issue(int(row), FEATURE_NAMES[col], message))
    _raise(f"invalid {what}", issues, total, limit)


def validate_frame(
    frame: pd.DataFrame,
    bounds: Bounds = DEFAULT_BOUNDS,
    allowed_extra: Iterable[str] = (),
    limit: int = 20,
    what: str = "input",
) -> np.ndarray:
    """Validate the feature columns of a DataFrame and return them as an array.

    Args:
        frame: The data; rows are reported by position (0-based).
        bounds: Allowed value range.
        allowed_extra: Non-feature columns that may be present.
        limit: How many issues to list at most.
        what: Name of the input, used in the error summary.

    Returns:
        A float64 array of shape (rows, 10) in schema order.

    Raises:
        DataValidationError: Missing/extra columns, text cells, NaN/inf or out-of-range.
    """
    import pandas as pd

    issues = check_columns([str(c) for c in frame.columns], allowed_extra)
    _raise(f"invalid {what}", issues, len(issues), limit)
    issues = []
    total = 0
    for name in FEATURE_NAMES:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            numeric = pd.to_numeric(column, errors="coerce")
            text = numeric.isna() & column.notna()
            if pd.api.types.is_bool_dtype(column):
                text = column.notna()
            positions = np.flatnonzero(text.to_numpy())
            total += len(positions)
            issues += [
                Issue(int(p), name, f"not a number: {column.iloc[p]!r}") for p in positions[:limit]
            ]
    _raise(f"invalid {what}", issues, total, limit)
    array = frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    _check_values(array, bounds, limit, what)
    return np.ascontiguousarray(array)


def validate_records(
    records: Sequence[Any], bounds: Bounds = DEFAULT_BOUNDS, limit: int = 20
) -> np.ndarray:
    """Validate JSON-like records keyed by feature name (the REST payload form).

    Args:
        records: A sequence of mappings such as ``{"x1": 0.5, ..., "x10": -2}``.
        bounds: Allowed value range.
        limit: How many issues to list at most.

    Returns:
        A float64 array of shape (records, 10).

    Raises:
        DataValidationError: A record is not an object, lacks or adds a field, or has a
            non-numeric (including bool and null), NaN/inf or out-of-range value.
    """
    out = np.empty((len(records), N_FEATURES), dtype=np.float64)
    issues: list[Issue] = []
    total = 0
    for row, record in enumerate(records):
        found = _record_issues(record, row, out)
        total += len(found)
        if len(issues) < limit:
            issues += found
    _raise("invalid records", issues, total, limit)
    _check_values(out, bounds, limit, "records")
    return out


def _record_issues(record: Any, row: int, out: np.ndarray) -> list[Issue]:
    if not isinstance(record, Mapping):
        return [Issue(row, None, f"expected an object keyed by feature, got {_kind(record)}")]
    issues: list[Issue] = []
    if len(record) != N_FEATURES or not _FEATURE_SET.issuperset(record):
        issues += [Issue(row, n, "missing feature") for n in FEATURE_NAMES if n not in record]
        issues += [Issue(row, str(k), "unexpected field") for k in record if k not in _FEATURE_SET]
    target = out[row]
    for col, name in enumerate(FEATURE_NAMES):
        value = record.get(name)
        if type(value) is float:
            target[col] = value
        elif type(value) is int:
            target[col] = value if abs(value) < 1e300 else np.inf  # huge ints: out of range
        elif name in record:
            issues.append(Issue(row, name, f"expected a number, got {_kind(value)}"))
    return issues


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"a string {value[:40]!r}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
