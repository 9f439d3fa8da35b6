"""Survey responses: validated, transactional, idempotent ingest of whole deliveries.

A delivery (one or more files, or a frame) is one transaction: every input is read and
validated, then written, inside it, so any failure leaves nothing behind. Per input:

- the same content for the same month (sha256 of the file bytes, or of the frame's
  values, plus the month) is a no-op the second time (``already_ingested``);
- rows whose respondent is stored in the month with the same answers are skipped and
  counted; with *different* answers the delivery fails (`ConflictError`) unless
  ``replace`` is asked for, which supersedes the month's stored rows
  (`survey_replace`: labels dropped, monitoring runs marked stale, an audit row);
  replacing with the rows already stored changes nothing (``unchanged``);
- with a `BadRowLimit`, up to that many invalid rows are set aside into `survey_rejects`
  instead of failing the input (the default is strict: none).

Reading files (`persona.survey_file`) and validation + hashes (`persona.survey_input`)
touch no database; one input is written by `survey_delivery` with the writers of
`survey_write` (PostgreSQL binary COPY, SQLite ``executemany``), all on the delivery's one
connection. Reads are in `survey_queries`.

Row numbers in errors: CSV files report file line numbers (line 1 is the header); Parquet
files report 1-based row numbers; DataFrames report 0-based positions. The error summary
says which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import IngestError, PersonaError, StoreError
from persona.features import DEFAULT_BOUNDS, Bounds
from persona.months import Month
from persona.store.survey_delivery import (
    Chunked,
    ConflictError,
    IngestOptions,
    IngestResult,
    Input,
    write_chunked,
    write_input,
)
from persona.survey_file import (
    estimated_rows,
    iter_csv_chunks,
    iter_parquet_chunks,
    read_csv_file,
    read_parquet_file,
)
from persona.survey_input import validate_and_hash

__all__ = [
    "ConflictError",
    "DeliveryError",
    "IngestOptions",
    "IngestResult",
    "Reader",
    "file_reader",
    "frame_reader",
    "ingest_delivery",
    "ingest_file",
    "ingest_frame",
]


@dataclass
class DeliveryError(PersonaError):
    """An input of a delivery failed: nothing of the delivery was written.

    Attributes:
        index: The failing input's position in the delivery.
        cause: Its error.
        done: What the inputs before it would have written (rolled back).
    """

    index: int
    cause: PersonaError
    done: list[IngestResult] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.cause)


Reader = Callable[[], "Input | Chunked"]


def _deliver(
    engine: Engine, readers: Sequence[Reader], options: IngestOptions, direct: bool
) -> list[IngestResult]:
    """Read, validate and write every input in one transaction (see `ingest_delivery`)."""
    results: list[IngestResult] = []
    driver_error = getattr(engine.dialect.loaded_dbapi, "Error", SQLAlchemyError)
    driver_integrity = getattr(engine.dialect.loaded_dbapi, "IntegrityError", IntegrityError)
    state: tuple[set[Month], bool] = (set(), direct)
    limits = (options.bounds, options.error_limit)
    with engine.begin() as conn:
        for index, read in enumerate(readers):
            try:
                item = read()
                if isinstance(item, Chunked):
                    results.append(write_chunked(conn, item, options, state))
                    continue
                valid = validate_and_hash(
                    item.frame, options.month, item.content, limits, item.numbering,
                    options.bad_rows,
                )  # fmt: skip
                results.append(write_input(conn, item, valid, options, state))
            except PersonaError as exc:
                raise DeliveryError(index, exc, results) from exc
            except (IntegrityError, driver_integrity):
                raise  # a concurrent writer: the caller retries the whole delivery
            except (SQLAlchemyError, driver_error) as exc:
                cause = StoreError(f"ingest failed, nothing written: {exc}")
                raise DeliveryError(index, cause, results) from exc
    return results


def ingest_delivery(
    engine: Engine, readers: Sequence[Reader], options: IngestOptions
) -> list[IngestResult]:
    """Ingest a delivery of inputs in one transaction: every input is written, or none.

    Args:
        engine: The store engine (`open_store`).
        readers: One callable per input returning it read (`file_reader`, `frame_reader`);
            called in order, inside the transaction (one input in memory at a time).
        options: Month, bounds, replace, bad-row limit, actor.

    Returns:
        One `IngestResult` per input, in order.

    Raises:
        DeliveryError: An input failed (its error is ``cause``); nothing was written.
    """
    integrity = getattr(engine.dialect.loaded_dbapi, "IntegrityError", IntegrityError)
    try:
        return _deliver(engine, readers, options, direct=True)
    except (IntegrityError, integrity):
        pass  # a month was filled (or the same content stored) concurrently
    try:
        return _deliver(engine, readers, options, direct=False)  # stage every input
    except (IntegrityError, integrity) as exc:
        raise DeliveryError(0, StoreError(f"ingest failed, nothing written: {exc}")) from exc


def frame_reader(frame: pd.DataFrame, source: str = "<frame>") -> Reader:
    """A delivery input of a DataFrame (rows are 0-based positions in errors)."""

    def read() -> Input:
        if len(frame) == 0:
            raise IngestError(f"{source}: no rows to ingest")
        numbering = (f"survey data {source}", "rows are 0-based positions", int)
        return Input(source, frame, None, numbering)

    return read


def file_reader(path: str | Path, error_limit: int = 20, chunk_rows: int | None = None) -> Reader:
    """A delivery input of a ``.csv`` or ``.parquet`` survey file.

    Args:
        path: The file.
        error_limit: How many bad lines to list at most.
        chunk_rows: A file of more rows is read `chunk_rows` at a time (`INGEST_CHUNK_ROWS`;
            None: always whole).
    """

    def read() -> Input | Chunked:
        file = Path(path)
        if not file.is_file():
            raise IngestError(f"survey file not found: {file}")
        suffix = file.suffix.lower()
        if chunk_rows and suffix in (".csv", ".parquet") and estimated_rows(file) > chunk_rows:
            chunked = iter_csv_chunks if suffix == ".csv" else iter_parquet_chunks
            return Chunked(str(file), file, lambda: chunked(file, chunk_rows))
        if suffix == ".csv":
            frame, content, renumber = read_csv_file(file, error_limit)
            note = "rows are file line numbers; line 1 is the header"
        elif suffix == ".parquet":
            frame, content, renumber = read_parquet_file(file)
            note = "rows are numbered from 1"
        else:
            raise IngestError(
                f"{file}: unsupported file type {suffix!r}: expected .csv or .parquet"
            )
        return Input(str(file), frame, content, (f"survey file {file}", note, renumber))

    return read


def _one(engine: Engine, reader: Reader, options: IngestOptions) -> IngestResult:
    try:
        return ingest_delivery(engine, [reader], options)[0]
    except DeliveryError as exc:
        raise exc.cause from exc.__cause__


def ingest_frame(
    engine: Engine,
    frame: pd.DataFrame,
    month: Month | None = None,
    source: str = "<frame>",
    *,
    bounds: Bounds = DEFAULT_BOUNDS,
    error_limit: int = 20,
    options: IngestOptions | None = None,
) -> IngestResult:
    """Validate and store a DataFrame of survey responses for one month.

    Args:
        engine: The store engine (`open_store`).
        frame: Columns ``respondent_id``, optional ``survey_month``, ``x1..x10``.
        month: The month; required unless the frame has a ``survey_month`` column, and
            must agree with it when both are given.
        source: Name recorded on the ingest batch.
        bounds: Allowed feature range.
        error_limit: How many bad rows to list at most.
        options: Replace / bad-row limit / actor (its month, bounds and limit are
            overridden by the arguments above).

    Returns:
        What was written (`IngestResult`).

    Raises:
        DataValidationError: Bad columns or rows (0-based row positions); nothing written.
        ConflictError: Stored respondents with other answers (without replace).
        IngestError: No month, or an empty frame.
        StoreError: The database write failed; nothing written.
    """
    base = options or IngestOptions()
    chosen = replace(base, month=month, bounds=bounds, error_limit=error_limit)
    return _one(engine, frame_reader(frame, source), chosen)


def ingest_file(
    engine: Engine,
    path: str | Path,
    *,
    month: Month | None = None,
    bounds: Bounds = DEFAULT_BOUNDS,
    error_limit: int = 20,
    options: IngestOptions | None = None,
) -> IngestResult:
    """Validate and store one survey file (``.csv`` or ``.parquet``) in one transaction.

    Args:
        engine: The store engine (`open_store`).
        path: The file; columns ``respondent_id``, optional ``survey_month``, ``x1..x10``.
        month: The month; required unless the file has a ``survey_month`` column, and must
            agree with it when both are given.
        bounds: Allowed feature range.
        error_limit: How many bad rows to list at most.
        options: As in `ingest_frame`.

    Returns:
        What was written; ``already_ingested`` when the same bytes were stored for the
        same month before.

    Raises:
        DataValidationError: Bad columns or rows: CSV rows are file line numbers (line 1
            is the header), Parquet rows are 1-based. Nothing is written.
        ConflictError: Stored respondents with other answers (without replace).
        IngestError: Missing/empty/unreadable file, no month, unknown file type.
        StoreError: The database write failed; nothing written.
    """
    base = options or IngestOptions()
    chosen = replace(base, month=month, bounds=bounds, error_limit=error_limit)
    return _one(engine, file_reader(path, error_limit), chosen)
