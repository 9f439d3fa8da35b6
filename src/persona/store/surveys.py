"""Survey responses: validated, transactional, idempotent ingest, and loads by month.

Ingest validates the whole input before writing anything; the write of one input is one
transaction (batch row + responses), so a failure leaves nothing behind. The same content
for the same month (sha256 of the file bytes, or of the frame's values, plus the month) is
a no-op the second time; rows whose (respondent_id, survey_month) already exist are
skipped and counted. PostgreSQL: a month with no rows yet is COPYed straight into the
table (a streamed CSV built by pyarrow); otherwise COPY into a temporary staging table then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. SQLite: an ``executemany`` insert with
``ON CONFLICT DO NOTHING``. SQL text is built only from the schema objects' own names.

Row numbers in errors: CSV files report file line numbers (line 1 is the header); Parquet
files report 1-based row numbers; DataFrames report 0-based positions. The error summary
says which.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    MetaData,
    Table,
    Text,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import IngestError, StoreError
from persona.features import DEFAULT_BOUNDS, FEATURE_NAMES, Bounds
from persona.months import parse_month
from persona.store.engine import utcnow
from persona.store.schema import ingest_batches, survey_responses
from persona.store.survey_input import (
    ID,
    MONTH,
    Renumber,
    bytes_hash,
    frame_hash,
    read_csv_file,
    read_parquet_file,
    validate_survey_frame,
)

_LOAD_COLUMNS = ("response_id", ID, MONTH, *FEATURE_NAMES)
_SQLITE_CHUNK = 20_000

# PostgreSQL staging table for COPY: temporary, dropped at commit (or gone on rollback).
_staging = Table(
    "persona_ingest_staging",
    MetaData(),
    Column("position", BigInteger, nullable=False),
    Column(ID, Text, nullable=False),
    *[Column(name, Float(precision=53), nullable=False) for name in FEATURE_NAMES],
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


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
    month: str
    content_hash: str
    rows: int
    rows_new: int
    rows_skipped: int
    already_ingested: bool
    batch_id: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


class _CsvStream(io.RawIOBase):
    """A readable file of CSV text produced batch by batch while PostgreSQL parses the last.

    COPY reads it in chunks, so formatting the next rows in Python overlaps with the
    server parsing and inserting the previous ones (two processes, two cores).
    """

    def __init__(self, table: pa.Table, batch_rows: int = 50_000) -> None:
        super().__init__()
        self._batches = iter(table.to_batches(max_chunksize=batch_rows))
        self._pending = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = size if size is not None and size >= 0 else None
        while want is None or len(self._pending) < want:
            batch = next(self._batches, None)
            if batch is None:
                break
            sink = io.BytesIO()
            pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
            self._pending += sink.getvalue()
        cut = len(self._pending) if want is None else want
        out = bytes(self._pending[:cut])
        del self._pending[:cut]
        return out


def _copy(conn: Connection, target: Table, arrays: list[pa.Array], names: list[str]) -> None:
    """COPY arrays into `target` (column names from the schema objects) as streamed CSV."""
    stream = _CsvStream(pa.table(arrays, names=names))
    quote = conn.dialect.identifier_preparer
    columns = ", ".join(quote.quote(target.c[name].name) for name in names)
    statement = f"COPY {quote.format_table(target)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(statement, stream, size=1 << 20)
    finally:
        cursor.close()


def _copy_postgres(
    conn: Connection,
    ids: pa.Array,
    values: np.ndarray,
    month: str,
    batch_id: str,
    now: Any,
    direct: bool = True,
) -> int:
    features = [pa.array(values[:, j]) for j in range(values.shape[1])]
    id_array = ids
    month_taken = select(survey_responses.c.response_id).where(survey_responses.c[MONTH] == month)
    if direct and conn.execute(month_taken.limit(1)).first() is None:
        # A month with no rows yet cannot conflict (ids are unique within the input): COPY
        # straight into the table. A concurrent writer of the same month makes this fail
        # with a unique violation; `_write` then retries through the staging table.
        n = len(ids)
        constants = [pa.repeat(month, n), pa.repeat(batch_id, n), pa.repeat(now.isoformat(), n)]
        names = [ID, *FEATURE_NAMES, MONTH, "batch_id", "ingested_at"]
        _copy(conn, survey_responses, [id_array, *features, *constants], names)
        return n
    staging = _staging
    staging.create(conn, checkfirst=False)
    position = pa.array(np.arange(len(ids), dtype=np.int64))
    _copy(conn, staging, [position, id_array, *features], [c.name for c in staging.columns])
    source = select(
        staging.c[ID],
        literal(month, survey_responses.c[MONTH].type),
        *[staging.c[name] for name in FEATURE_NAMES],
        literal(batch_id, survey_responses.c.batch_id.type),
        literal(now, survey_responses.c.ingested_at.type),
    ).order_by(staging.c.position)
    insert = pg_insert(survey_responses).from_select(
        [ID, MONTH, *FEATURE_NAMES, "batch_id", "ingested_at"], source
    )
    result = conn.execute(insert.on_conflict_do_nothing(index_elements=[ID, MONTH]))
    return int(result.rowcount)


def _insert_sqlite(
    conn: Connection,
    ids: pa.Array,
    values: np.ndarray,
    month: str,
    batch_id: str,
    now: Any,
    direct: bool = True,
) -> int:
    insert = sqlite_insert(survey_responses).on_conflict_do_nothing(index_elements=[ID, MONTH])
    for start in range(0, len(ids), _SQLITE_CHUNK):
        rows = [
            {
                ID: rid,
                MONTH: month,
                "batch_id": batch_id,
                "ingested_at": now,
                **dict(zip(FEATURE_NAMES, row, strict=True)),
            }
            for rid, row in zip(
                ids.slice(start, _SQLITE_CHUNK).to_pylist(),
                values[start : start + _SQLITE_CHUNK].tolist(),
                strict=True,
            )
        ]
        conn.execute(insert, rows)
    count = (
        select(func.count())
        .select_from(survey_responses)
        .where(survey_responses.c.batch_id == batch_id)
    )
    return int(conn.execute(count).scalar_one())


def _existing_batch(conn: Connection, content_hash: str) -> str | None:
    query = select(ingest_batches.c.batch_id).where(ingest_batches.c.content_hash == content_hash)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def _write(
    engine: Engine,
    ids: pa.Array,
    values: np.ndarray,
    month: str,
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
            new = writer(conn, ids, values, month, batch_id, now, direct)
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
    month: str | None,
    source: str,
    limits: tuple[Bounds, int],
    numbering: tuple[str, str, Renumber],
    content: bytes | None,
) -> IngestResult:
    started = time.perf_counter()
    what, note, renumber = numbering
    month, ids, values = validate_survey_frame(
        frame, month, limits[0], limits[1], what, note, renumber
    )
    content_hash = frame_hash(frame, month) if content is None else bytes_hash(content, month)
    batch_id, new, already = _write(engine, ids, values, month, source, content_hash)
    rows = len(ids)
    skipped = rows - new
    return IngestResult(
        source,
        month,
        content_hash,
        rows,
        new,
        skipped,
        already,
        batch_id,
        round(time.perf_counter() - started, 4),
    )


def ingest_frame(
    engine: Engine,
    frame: pd.DataFrame,
    month: str | None = None,
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
        MonthError: `month` is not ``YYYY-MM``.
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
    month: str | None = None,
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
        MonthError: `month` is not ``YYYY-MM``.
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


def load_months(engine: Engine, months: Sequence[str]) -> pd.DataFrame:
    """Load the responses of several months, ordered by month then response id.

    Args:
        engine: The store engine.
        months: ``YYYY-MM`` months.

    Returns:
        Columns ``response_id, respondent_id, survey_month, x1..x10`` (empty if none).
    """
    wanted = sorted({parse_month(m) for m in months})
    columns = [survey_responses.c[name] for name in _LOAD_COLUMNS]
    query = (
        select(*columns)
        .where(survey_responses.c[MONTH].in_(wanted))
        .order_by(survey_responses.c[MONTH], survey_responses.c.response_id)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).fetchall()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read survey months {wanted}: {exc}") from exc
    frame = pd.DataFrame(rows, columns=list(_LOAD_COLUMNS))
    dtypes = {"response_id": "int64", ID: "object", MONTH: "object"}
    return frame.astype({**dtypes, **dict.fromkeys(FEATURE_NAMES, "float64")})


def load_month(engine: Engine, month: str) -> pd.DataFrame:
    """Load one month's responses ordered by response id (file order).

    Args:
        engine: The store engine.
        month: ``YYYY-MM``.

    Returns:
        Columns ``response_id, respondent_id, survey_month, x1..x10`` (empty if none).
    """
    return load_months(engine, [month])


def list_months(engine: Engine) -> list[dict[str, Any]]:
    """List the stored months with their row counts, oldest first.

    Returns:
        ``[{"month": "2025-01", "rows": 500}, ...]``.
    """
    month = survey_responses.c[MONTH]
    query = select(month, func.count()).group_by(month).order_by(month)
    try:
        with engine.connect() as conn:
            return [{"month": str(m), "rows": int(n)} for m, n in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot list survey months: {exc}") from exc


def month_fingerprint(engine: Engine, months: Sequence[str]) -> str:
    """A sha256 over the months' ingest batches (content hash and rows written).

    Batches that wrote no new rows (a re-ingest of the same data in another format) do
    not count, so the same stored data gives the same value.

    Args:
        engine: The store engine.
        months: ``YYYY-MM`` months.

    Returns:
        Hex digest.
    """
    wanted = sorted({parse_month(m) for m in months})
    batches = ingest_batches.c
    query = (
        select(batches.survey_month, batches.content_hash, batches.rows_new)
        .where(batches.survey_month.in_(wanted), batches.rows_new > 0)
        .order_by(batches.survey_month, batches.content_hash)
    )
    digest = hashlib.sha256(("months:" + ",".join(wanted) + "\n").encode())
    with engine.connect() as conn:
        for month, content_hash, rows in conn.execute(query):
            digest.update(f"{month}:{content_hash}:{rows}\n".encode())
    return digest.hexdigest()
