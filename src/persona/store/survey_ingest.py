"""Survey responses: validated, transactional, idempotent ingest into the store.

Ingest validates the whole input before writing anything; the write of one input is one
transaction (batch row + responses), so a failure leaves nothing behind. The same content
for the same month (sha256 of the file bytes, or of the frame's values, plus the month) is
a no-op the second time; rows whose (respondent_id, survey_month) already exist are
skipped and counted. Reading files (`persona.survey_file`) and validation + hashes
(`persona.survey_input`) touch no database; this module writes what they return, with
`survey_write` (PostgreSQL binary COPY, SQLite ``executemany``). Reads are in
`survey_queries`.

Row numbers in errors: CSV files report file line numbers (line 1 is the header); Parquet
files report 1-based row numbers; DataFrames report 0-based positions. The error summary
says which.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import IngestError, StoreError
from persona.features import DEFAULT_BOUNDS, Bounds
from persona.months import Month
from persona.store.engine import utcnow
from persona.store.schema import ingest_batches
from persona.store.survey_write import SurveyRows
from persona.store.survey_write import copy_postgres as _copy_postgres
from persona.store.survey_write import insert_sqlite as _insert_sqlite
from persona.survey_file import read_csv_file, read_parquet_file
from persona.survey_input import Renumber, validate_and_hash


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did.

    Attributes:
        source: File path or the caller's name for a frame.
        month: The survey month ingested.
        content_hash: sha256 of the content and month (the idempotence key).
        rows: Rows in the input.
        rows_new: Rows written now.
        rows_skipped: Rows whose (respondent_id, month) was already stored.
        already_ingested: True when the same content was ingested before (nothing done).
        batch_id: The ingest batch written (or the earlier one when already ingested).
        seconds: Wall time of the ingest.
    """

    source: str
    month: Month
    content_hash: str
    rows: int
    rows_new: int
    rows_skipped: int
    already_ingested: bool
    batch_id: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the keys of ``persona data ingest --json``)."""
        return {**asdict(self), "month": str(self.month)}


def _existing_batch(conn: Connection, content_hash: str) -> str | None:
    query = select(ingest_batches.c.batch_id).where(ingest_batches.c.content_hash == content_hash)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def _write(
    engine: Engine,
    ids: pa.Array,
    values: np.ndarray,
    month: Month,
    source: str,
    content_hash: str,
    direct: bool = True,
) -> tuple[str, int, bool]:
    batch_id = str(uuid.uuid4())
    now = utcnow()
    writer = _copy_postgres if engine.dialect.name == "postgresql" else _insert_sqlite
    driver_error = getattr(engine.dialect.loaded_dbapi, "Error", SQLAlchemyError)
    driver_integrity = getattr(engine.dialect.loaded_dbapi, "IntegrityError", IntegrityError)
    try:
        with engine.begin() as conn:
            earlier = _existing_batch(conn, content_hash)
            if earlier is not None:
                return earlier, 0, True
            conn.execute(
                ingest_batches.insert().values(
                    batch_id=batch_id,
                    source=source[-2000:],
                    content_hash=content_hash,
                    survey_month=month,
                    rows=len(ids),
                    rows_new=0,
                    ingested_at=now,
                )
            )
            new = writer(conn, SurveyRows(ids, values, month, batch_id, now), direct)
            conn.execute(
                update(ingest_batches)
                .where(ingest_batches.c.batch_id == batch_id)
                .values(rows_new=new)
            )
    except (IntegrityError, driver_integrity) as exc:
        with engine.connect() as conn:
            earlier = _existing_batch(conn, content_hash)
        if earlier is not None:  # the same content was ingested concurrently
            return earlier, 0, True
        if direct:  # the month was filled concurrently: go through the staging table
            return _write(engine, ids, values, month, source, content_hash, direct=False)
        raise StoreError(f"ingest of {source} failed, nothing written: {exc}") from exc
    except (SQLAlchemyError, driver_error) as exc:
        raise StoreError(f"ingest of {source} failed, nothing written: {exc}") from exc
    return batch_id, new, False


def _ingest(
    engine: Engine,
    frame: pd.DataFrame,
    month: Month | None,
    source: str,
    limits: tuple[Bounds, int],
    numbering: tuple[str, str, Renumber],
    content: bytes | None,
) -> IngestResult:
    started = time.perf_counter()
    month, ids, values, content_hash = validate_and_hash(frame, month, content, limits, numbering)
    batch_id, new, already = _write(engine, ids, values, month, source, content_hash)
    seconds = round(time.perf_counter() - started, 4)
    rows = len(ids)
    return IngestResult(
        source, month, content_hash, rows, new, rows - new, already, batch_id, seconds
    )


def ingest_frame(
    engine: Engine,
    frame: pd.DataFrame,
    month: Month | None = None,
    source: str = "<frame>",
    *,
    bounds: Bounds = DEFAULT_BOUNDS,
    error_limit: int = 20,
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

    Returns:
        What was written (`IngestResult`).

    Raises:
        DataValidationError: Bad columns or rows (0-based row positions); nothing written.
        IngestError: No month, or an empty frame.
        StoreError: The database write failed; nothing written.
    """
    if len(frame) == 0:
        raise IngestError(f"{source}: no rows to ingest")
    numbering = (f"survey data {source}", "rows are 0-based positions", int)
    return _ingest(engine, frame, month, source, (bounds, error_limit), numbering, None)


def ingest_file(
    engine: Engine,
    path: str | Path,
    *,
    month: Month | None = None,
    bounds: Bounds = DEFAULT_BOUNDS,
    error_limit: int = 20,
) -> IngestResult:
    """Validate and store one survey file (``.csv`` or ``.parquet``) in one transaction.

    Args:
        engine: The store engine (`open_store`).
        path: The file; columns ``respondent_id``, optional ``survey_month``, ``x1..x10``.
        month: The month; required unless the file has a ``survey_month`` column, and must
            agree with it when both are given.
        bounds: Allowed feature range.
        error_limit: How many bad rows to list at most.

    Returns:
        What was written; ``already_ingested`` when the same bytes were stored for the
        same month before.

    Raises:
        DataValidationError: Bad columns or rows: CSV rows are file line numbers (line 1
            is the header), Parquet rows are 1-based. Nothing is written.
        IngestError: Missing/empty/unreadable file, no month, unknown file type.
        StoreError: The database write failed; nothing written.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"survey file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame, content, renumber = read_csv_file(path, error_limit)
        note = "rows are file line numbers; line 1 is the header"
    elif suffix == ".parquet":
        frame, content, renumber = read_parquet_file(path)
        note = "rows are numbered from 1"
    else:
        raise IngestError(f"{path}: unsupported file type {suffix!r}: expected .csv or .parquet")
    numbering = (f"survey file {path}", note, renumber)
    return _ingest(engine, frame, month, str(path), (bounds, error_limit), numbering, content)
