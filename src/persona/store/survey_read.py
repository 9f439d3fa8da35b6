"""Reading survey files strictly into a frame (no validation of values, no database here).

`read_csv_file` reads a CSV strictly (every line as many fields as the header, Arrow's
multi-threaded parser; text cells fall back to a text read so validation can name them);
`read_parquet_file` reads Parquet. Both return the raw bytes too (the content hash).
"""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from persona.errors import DataValidationError, IngestError, Issue
from persona.features import FEATURE_NAMES
from persona.store.survey_input import TEXT, Renumber


def _arrow_text(arrow_type: pa.DataType) -> Any:
    return TEXT if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else None


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
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    end = content.find(b"\n")
    head = content[: end if end >= 0 else len(content)]  # not split(): no copy of the rest
    first = head.decode("utf-8-sig", errors="replace").strip()
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
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        frame = pq.read_table(io.BytesIO(content)).to_pandas(types_mapper=_arrow_text)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path}: cannot read as Parquet: {exc}") from None
    if len(frame) == 0:
        raise IngestError(f"{path}: the file has no data rows")
    return frame, content, lambda position: position + 1
