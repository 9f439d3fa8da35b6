"""Reading survey files strictly into a frame (no validation of values, no database here).

`read_csv_file` reads a CSV strictly (every line as many fields as the header, Arrow's
multi-threaded parser; text cells fall back to a text read so validation can name them);
`read_parquet_file` reads Parquet. Both return the raw bytes too (the content hash).
A top-level module beside `survey_input` and `features`, not in `store/`: it reads files,
never the database.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from persona.errors import DataValidationError, IngestError, Issue
from persona.features import FEATURE_NAMES
from persona.survey_input import TEXT, Renumber


def _arrow_text(arrow_type: pa.DataType) -> Any:
    return TEXT if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else None


_EMPTY = (b"", b"\r")  # the lines Arrow skips (ignore_empty_lines)


def _csv_line_numbers(content: bytes) -> np.ndarray:
    """File line number (1-based) of each data row: non-empty lines after the header."""
    lines = content.split(b"\n")
    return np.array(
        [i + 1 for i, line in enumerate(lines) if i and line not in _EMPTY], dtype=np.int64
    )


_SAMPLE_BYTES = 1 << 16
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_CONTROL = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def check_text(path: Path, content: bytes) -> None:
    """Refuse a file that is not UTF-8 text, saying what it is instead (never echoing it).

    Args:
        path: The file (for the message).
        content: Its bytes.

    Raises:
        IngestError: UTF-16/UTF-32 text, or binary content (NUL bytes, invalid UTF-8).
    """
    sample = content[:_SAMPLE_BYTES]
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            raise IngestError(
                f"{path}: the file is {encoding} text (byte-order mark); save it as UTF-8 CSV"
            )
    nul = sample.find(b"\x00")
    if nul >= 0:
        if len(sample) > 1 and sample[1::2].count(0) > len(sample) // 4:
            raise IngestError(f"{path}: the file looks like UTF-16 text; save it as UTF-8 CSV")
        raise IngestError(
            f"{path}: not a text CSV file (binary content: a NUL byte at offset {nul}); "
            "expected UTF-8 CSV or Parquet"
        )
    control = _CONTROL.search(sample)
    if control is not None:
        raise IngestError(
            f"{path}: not a text CSV file (binary content: control byte "
            f"0x{control.group()[0]:02x} at offset {control.start()}); "
            "expected UTF-8 CSV or Parquet"
        )
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut by the sample's end
            raise IngestError(
                f"{path}: not UTF-8 text (byte 0x{sample[exc.start]:02x} at offset "
                f"{exc.start}); save it as UTF-8 CSV"
            ) from None


def check_delimiter(path: Path, header: list[str]) -> None:
    """Refuse a header separated by something else than commas, naming the separator.

    Raises:
        IngestError: A one-field header that splits into columns on ``;``, tab or ``|``.
    """
    if len(header) != 1:
        return
    for sep, name in _DELIMITERS.items():
        fields = [f.strip() for f in header[0].split(sep)]
        if len(fields) > 1 and any(f in FEATURE_NAMES for f in fields):
            raise IngestError(
                f"{path}: the columns are separated by {name} ({sep!r}), not commas; "
                "save the file as comma-separated CSV"
            )


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
    check_text(path, content)
    end = content.find(b"\n")
    head = content[: end if end >= 0 else len(content)]  # not split(): no copy of the rest
    first = head.decode("utf-8-sig", errors="replace").strip()
    if not first:
        raise IngestError(f"{path}: the file is empty (no header line)")
    header = next(csv.reader([first]))
    check_delimiter(path, header)
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
        # Arrow numbers the rows it saw (the header is 1) and skips empty lines: map its
        # numbers back to file lines.
        data_lines = _csv_line_numbers(content)

        def line_of(number: int) -> int:
            return int(data_lines[number - 2]) if 2 <= number < len(data_lines) + 2 else number

        issues = [
            Issue(
                line_of(row.number),
                None,
                f"line {line_of(row.number)} has {row.actual_columns} fields, "
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


# --- large files: read in chunks of rows, so memory follows the chunk, not the file ---


def estimated_rows(path: Path) -> int:
    """Rows of a survey file: Parquet's own count; for a CSV, the size over its line length.

    Raises:
        IngestError: Unreadable file.
    """
    try:
        if path.suffix.lower() == ".parquet":
            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open("rb") as handle:
            sample = handle.read(_SAMPLE_BYTES)
        lines = max(sample.count(b"\n"), 1)
        return int(path.stat().st_size * lines / max(len(sample), 1))
    except (OSError, pa.ArrowException) as exc:
        raise IngestError(f"{path}: cannot read the file: {exc}") from None


def file_hash(path: Path, month: str, block: int = 1 << 24) -> str:
    """`survey_input.bytes_hash` of a file read block by block (never whole)."""
    digest = hashlib.sha256(f"file|{month}|".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def iter_parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The rows of a Parquet file, `chunk_rows` at a time (text columns Arrow-backed).

    Raises:
        IngestError: Unreadable Parquet.
    """
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas(types_mapper=_arrow_text)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path}: cannot read as Parquet: {exc}") from None


_CSV_BLOCK_BYTES = 1 << 24  # the streaming reader reads ahead a few blocks of this size


def _frame_of(batches: list[pa.RecordBatch]) -> pd.DataFrame:
    return pa.Table.from_batches(batches).to_pandas(types_mapper=_arrow_text)


def iter_csv_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The rows of a CSV file, about `chunk_rows` at a time (features read as float64).

    The same strict rules as `read_csv_file` (UTF-8 text, commas, every line as many fields
    as the header). A cell that is not a number stops the read, naming the column and value
    and how many data rows came before (Arrow's streaming reader knows no line numbers).

    Raises:
        IngestError: Not UTF-8 CSV, no header, or a cell that is not a number.
        DataValidationError: Lines with the wrong number of fields.
    """
    with path.open("rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    check_text(path, sample)
    first = sample.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    if not first:
        raise IngestError(f"{path}: the file is empty (no header line)")
    header = next(csv.reader([first]))
    check_delimiter(path, header)
    line_bytes = len(sample) / max(sample.count(b"\n"), 1)
    bad: list[Any] = []

    def on_bad_row(row: Any) -> str:
        bad.append(row)
        return "skip"

    types = {name: pa.float64() if name in FEATURE_NAMES else pa.string() for name in header}
    done, pending, held = 0, [], 0
    block = min(max(int(chunk_rows * line_bytes), 1 << 12), _CSV_BLOCK_BYTES)
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        for batch in reader:  # blocks of at most _CSV_BLOCK_BYTES, gathered into a chunk
            if bad:
                break
            pending.append(batch)
            held += batch.num_rows
            if held >= chunk_rows:
                done += held
                yield _frame_of(pending)
                pending, held = [], 0
        if pending and not bad:
            done += held
            yield _frame_of(pending)
    except pa.ArrowInvalid as exc:
        raise IngestError(
            f"{path}: after data row {done:,}: {str(exc).splitlines()[0]} (a large file is read "
            "in chunks; fix the cell, or split the file below INGEST_CHUNK_ROWS rows to get "
            "every bad cell listed by line)"
        ) from None
    if bad:
        issues = [
            Issue(None, None, f"a line has {row.actual_columns} fields, expected "
                  f"{row.expected_columns}: {row.text[:80]!r}")
            for row in bad[:20]
        ]  # fmt: skip
        raise DataValidationError(f"invalid survey file {path}", issues, len(bad))
