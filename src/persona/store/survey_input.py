"""Reading and validating survey input before anything is written (no database here).

`read_csv_file` reads a CSV strictly (every line as many fields as the header, Arrow's
multi-threaded parser; text cells fall back to a text read so validation can name them);
`validate_survey_frame` checks columns, month, respondent ids and features of a whole
input and reports the first N problems with their row numbers.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from persona.errors import DataValidationError, IngestError, Issue
from persona.features import FEATURE_NAMES, Bounds, check_columns, validate_frame
from persona.months import MonthError, parse_month

ID = "respondent_id"
MONTH = "survey_month"
MAX_ID_LENGTH = 64
KEYS = (ID, MONTH)
# Text columns stay Arrow-backed: string checks on a million ids run in Arrow, not Python.
_TEXT = pd.StringDtype("pyarrow")

Renumber = Callable[[int], int]
"""Maps a 0-based row position to the number shown in errors (file line, 1-based row)."""


def frame_hash(frame: pd.DataFrame, month: str) -> str:
    """sha256 of a frame's ids and features plus the month (the idempotence key of frames)."""
    digest = hashlib.sha256(f"frame|{month}|".encode())
    hashed = pd.util.hash_pandas_object(frame.loc[:, [ID, *FEATURE_NAMES]], index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def bytes_hash(content: bytes, month: str) -> str:
    """sha256 of a file's bytes plus the month (the idempotence key of files)."""
    return hashlib.sha256(f"file|{month}|".encode() + content).hexdigest()


def _month_issues(frame: pd.DataFrame, month: str | None) -> tuple[str | None, list[Issue]]:
    if MONTH not in frame.columns:
        return month, []
    values = frame[MONTH].astype(_TEXT).str.strip().fillna("")
    uniques = [str(v) for v in values.unique()]
    valid: dict[str, str | None] = {}
    for value in uniques:
        try:
            valid[value] = parse_month(value)
        except MonthError:
            valid[value] = None
    if month is None:
        good = [v for v in uniques if valid[v] is not None]
        if len(good) == 1:
            month = good[0]
        elif good:
            month = str(values[values.isin(good)].value_counts().idxmax())
    issues: list[Issue] = []
    for value in uniques:
        if valid[value] is None:
            message = f"invalid month {value!r}: expected YYYY-MM, e.g. 2025-03"
        elif month is not None and value != month:
            message = f"survey_month {value!r} does not match the month being ingested ({month})"
        else:
            continue
        hits = np.flatnonzero((values == value).to_numpy(dtype=bool))
        issues += [Issue(int(p), MONTH, message) for p in hits]
    return month, issues


def _id_issues(frame: pd.DataFrame, renumber: Renumber) -> tuple[pa.Array, list[Issue]]:
    ids = frame[ID].astype(_TEXT).str.strip()
    issues = [
        Issue(int(p), ID, "respondent_id is empty")
        for p in np.flatnonzero((ids.isna() | (ids == "")).to_numpy(dtype=bool))
    ]
    ids = ids.fillna("")
    long = np.flatnonzero((ids.str.len() > MAX_ID_LENGTH).to_numpy(dtype=bool))
    issues += [
        Issue(int(p), ID, f"respondent_id longer than {MAX_ID_LENGTH} characters") for p in long
    ]
    dup = (ids.duplicated(keep="first") & (ids != "")).to_numpy(dtype=bool)
    if dup.any():
        first = {v: i for i, v in reversed(list(enumerate(ids.to_numpy())))}
        for p in np.flatnonzero(dup):
            value = ids.iloc[p]
            message = f"duplicate respondent_id {value!r} (first at row {renumber(first[value])})"
            issues.append(Issue(int(p), ID, message))
    return pa.array(ids, type=pa.string()), issues


def validate_survey_frame(
    frame: pd.DataFrame,
    month: str | None,
    bounds: Bounds,
    limit: int,
    what: str,
    note: str,
    renumber: Renumber,
) -> tuple[str, pa.Array, np.ndarray]:
    """Validate a whole input before anything is written.

    Args:
        frame: Columns ``respondent_id``, optional ``survey_month``, ``x1..x10``.
        month: Explicit month, or None to take it from the ``survey_month`` column.
        bounds: Allowed feature range.
        limit: How many problems to list at most.
        what: Name of the input for messages.
        note: How rows are numbered (said in the error summary).
        renumber: Maps a 0-based position to the number shown.

    Returns:
        ``(month, respondent ids as str, float64 features (rows, 10))``.

    Raises:
        DataValidationError: Wrong columns, bad month cells, empty/long/duplicate ids,
            text/NaN/inf/out-of-range features.
        IngestError: No month at all.
        MonthError: `month` is not ``YYYY-MM``.
    """
    columns = [str(c) for c in frame.columns]
    issues = [
        Issue(None, c, "duplicate column")
        for c in sorted({c for c in columns if columns.count(c) > 1})
    ]
    issues += check_columns(columns, allowed_extra=KEYS)
    if ID not in columns:
        issues.append(Issue(None, ID, "missing column"))
    if issues:
        expected = ", ".join([ID, f"[{MONTH}]", *FEATURE_NAMES])
        summary = f"invalid {what}: wrong columns (expected {expected})"
        raise DataValidationError(summary, issues[:limit])
    if month is not None:
        month = parse_month(month)
    month, issues = _month_issues(frame, month)
    if month is None:
        raise IngestError(f"{what}: no survey month: give one (--month) or a survey_month column")
    ids, id_issues = _id_issues(frame, renumber)
    issues += id_issues
    total = len(issues)
    values = np.empty((0, len(FEATURE_NAMES)))
    try:
        values = validate_frame(frame, bounds, KEYS, limit, what)
    except DataValidationError as exc:
        issues += exc.issues
        total += exc.total
    if total:
        issues.sort(key=lambda i: (i.row if i.row is not None else -1, str(i.column)))
        for i, found in enumerate(issues[:limit]):
            if found.row is not None:
                issues[i] = Issue(renumber(found.row), found.column, found.message)
        raise DataValidationError(f"invalid {what} ({note})", issues[:limit], total)
    return month, ids, values


def _arrow_text(arrow_type: pa.DataType) -> Any:
    return _TEXT if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else None


def _csv_line_numbers(content: bytes) -> np.ndarray:
    """File line number (1-based) of each data row: non-blank lines after the header."""
    lines = content.split(b"\n")
    return np.array([i + 1 for i, line in enumerate(lines) if i and line.strip()], dtype=np.int64)


def _read_csv_table(
    content: bytes, header: list[str], text_only: bool, threads: bool, bad: list[Any]
) -> pa.Table:
    def on_bad_row(row: Any) -> str:
        bad.append(row)
        return "skip"

    types = {
        name: pa.float64() if name in FEATURE_NAMES and not text_only else pa.string()
        for name in header
    }
    return pacsv.read_csv(
        io.BytesIO(content),
        read_options=pacsv.ReadOptions(use_threads=threads),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )


def read_csv_file(path: Path, error_limit: int = 20) -> tuple[pd.DataFrame, bytes, Renumber]:
    """Read a survey CSV strictly: every line must have as many fields as the header.

    Args:
        path: The CSV file.
        error_limit: How many bad lines to list at most.

    Returns:
        ``(frame, raw bytes, position -> file line number)``. Feature columns are float64
        unless a cell is not a number, in which case every column is text (validation
        then names the cell).

    Raises:
        IngestError: Empty file, header only, or unparseable CSV.
        DataValidationError: Lines with the wrong number of fields ("line N has K fields,
            expected M").
    """
    content = path.read_bytes()
    first = content.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    if not first:
        raise IngestError(f"{path}: the file is empty (no header line)")
    header = next(csv.reader([first]))
    bad: list[Any] = []
    try:
        try:
            table = _read_csv_table(content, header, False, True, bad)
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc):
                raise
            bad.clear()
            table = _read_csv_table(content, header, True, True, bad)
        if bad:  # read again single-threaded: only then does Arrow know the line numbers
            bad.clear()
            _read_csv_table(content, header, True, False, bad)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: cannot parse as CSV: {exc}") from None
    if bad:
        issues = [
            Issue(
                row.number,
                None,
                f"line {row.number} has {row.actual_columns} fields, "
                f"expected {row.expected_columns}",
            )
            for row in bad[:error_limit]
        ]
        note = "rows are file line numbers; line 1 is the header"
        raise DataValidationError(f"invalid survey file {path} ({note})", issues, len(bad))
    if table.num_rows == 0:
        raise IngestError(f"{path}: the file has a header but no data rows")
    lines = functools.cache(lambda: _csv_line_numbers(content))
    return (
        table.to_pandas(types_mapper=_arrow_text),
        content,
        lambda position: int(lines()[position]),
    )


def read_parquet_file(path: Path) -> tuple[pd.DataFrame, bytes, Renumber]:
    """Read a survey Parquet file; rows are numbered from 1 in errors.

    Raises:
        IngestError: Unreadable or without rows.
    """
    content = path.read_bytes()
    try:
        frame = pq.read_table(io.BytesIO(content)).to_pandas(types_mapper=_arrow_text)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path}: cannot read as Parquet: {exc}") from None
    if len(frame) == 0:
        raise IngestError(f"{path}: the file has no data rows")
    return frame, content, lambda position: position + 1
