"""Survey responses: validated, transactional, idempotent ingest, and loads by month.

Ingest validates the whole input before writing anything; the write of one input is one
transaction (batch row + responses), so a failure leaves nothing behind. The same content
for the same month (sha256 of the file bytes, or of the frame's values, plus the month) is
a no-op the second time; rows whose (respondent_id, survey_month) already exist are
skipped and counted. PostgreSQL takes a COPY into a temporary staging table followed by
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; SQLite an ``executemany`` insert with
``ON CONFLICT DO NOTHING``. SQL text is built only from the schema objects' own names.

Row numbers in errors: CSV files report file line numbers (line 1 is the header); Parquet
files report 1-based row numbers; DataFrames report 0-based positions. The error summary
says which.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import DataValidationError, IngestError, Issue, StoreError
from persona.features import DEFAULT_BOUNDS, FEATURE_NAMES, Bounds, check_columns, validate_frame
from persona.months import parse_month
from persona.store.engine import utcnow
from persona.store.schema import ingest_batches, staging_table, survey_responses

ID = "respondent_id"
MONTH = "survey_month"
MAX_ID_LENGTH = 64
_KEYS = (ID, MONTH)
_LOAD_COLUMNS = ("response_id", ID, MONTH, *FEATURE_NAMES)
_SQLITE_CHUNK = 20_000


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


Renumber = Callable[[int], int]


def _frame_hash(frame: pd.DataFrame, month: str) -> str:
    digest = hashlib.sha256(f"frame|{month}|".encode())
    hashed = pd.util.hash_pandas_object(frame.loc[:, [ID, *FEATURE_NAMES]], index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _bytes_hash(content: bytes, month: str) -> str:
    return hashlib.sha256(f"file|{month}|".encode() + content).hexdigest()


def _month_issues(frame: pd.DataFrame, month: str | None) -> tuple[str | None, list[Issue]]:
    if MONTH not in frame.columns:
        return month, []
    values = frame[MONTH].astype("string").str.strip().fillna("").to_numpy(dtype=object)
    uniques = pd.unique(values)
    valid = {}
    for value in uniques:
        try:
            valid[value] = parse_month(value)
        except Exception:  # noqa: BLE001 - MonthError; reported per row below
            valid[value] = None
    if month is None:
        good = [v for v in uniques if valid[v] is not None]
        month = str(pd.Series(values).mode().iloc[0]) if len(good) else None
    issues: list[Issue] = []
    for value in uniques:
        if valid[value] is None:
            message = f"invalid month {value!r}: expected YYYY-MM, e.g. 2025-03"
        elif month is not None and value != month:
            message = f"survey_month {value!r} does not match the month being ingested ({month})"
        else:
            continue
        issues += [Issue(int(p), MONTH, message) for p in np.flatnonzero(values == value)]
    return month, issues


def _id_issues(frame: pd.DataFrame) -> tuple[np.ndarray, list[Issue]]:
    raw = frame[ID]
    ids = raw.astype("string").str.strip()
    issues = [Issue(int(p), ID, "respondent_id is empty") for p in np.flatnonzero(ids.isna() | (ids == ""))]
    ids = ids.fillna("")
    long = np.flatnonzero(ids.str.len().to_numpy() > MAX_ID_LENGTH)
    issues += [Issue(int(p), ID, f"respondent_id longer than {MAX_ID_LENGTH} characters") for p in long]
    dup = ids.duplicated(keep="first") & (ids != "")
    if dup.any():
        first = {v: i for i, v in reversed(list(enumerate(ids.to_numpy())))}
        for p in np.flatnonzero(dup.to_numpy()):
            value = ids.iloc[p]
            message = f"duplicate respondent_id {value!r} (first at row {first[value]})"
            issues.append(Issue(int(p), ID, message))
    return ids.to_numpy(dtype=object), issues


def _validate(
    frame: pd.DataFrame,
    month: str | None,
    bounds: Bounds,
    limit: int,
    what: str,
    renumber: Renumber,
) -> tuple[str, np.ndarray, np.ndarray]:
    """Validate a whole input; return (month, respondent ids, float64 features)."""
    columns = [str(c) for c in frame.columns]
    issues = [Issue(None, c, "duplicate column") for c in sorted({c for c in columns if columns.count(c) > 1})]
    issues += check_columns(columns, allowed_extra=_KEYS)
    if ID not in columns:
        issues.append(Issue(None, ID, "missing column"))
    if issues:
        expected = ", ".join([ID, f"[{MONTH}]", *FEATURE_NAMES])
        raise DataValidationError(f"invalid {what}: wrong columns (expected {expected})", issues[:limit])
    if month is not None:
        month = parse_month(month)
    month, issues = _month_issues(frame, month)
    if month is None:
        raise IngestError(f"{what}: no survey month: give one (--month) or a survey_month column")
    ids, id_issues = _id_issues(frame)
    issues += id_issues
    total = len(issues)
    values = np.empty((0, len(FEATURE_NAMES)))
    try:
        values = validate_frame(frame, bounds, _KEYS, limit, what)
    except DataValidationError as exc:
        issues += exc.issues
        total += exc.total
    if total:
        issues.sort(key=lambda i: (i.row if i.row is not None else -1, str(i.column)))
        for i, found in enumerate(issues[:limit]):
            if found.row is not None:
                issues[i] = Issue(renumber(found.row), found.column, found.message)
        raise DataValidationError(what, issues[:limit], total)
    return month, ids, values


def _copy_postgres(conn: Connection, ids: np.ndarray, values: np.ndarray, month: str, batch_id: str, now: Any) -> int:
    staging = staging_table()
    staging.create(conn, checkfirst=False)
    table = pa.table(
        [pa.array(np.arange(len(ids), dtype=np.int64)), pa.array(ids, type=pa.string())]
        + [pa.array(values[:, j]) for j in range(values.shape[1])],
        names=[c.name for c in staging.columns],
    )
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    buffer.seek(0)
    quote = conn.dialect.identifier_preparer
    names = ", ".join(quote.quote(c.name) for c in staging.columns)
    statement = f"COPY {quote.format_table(staging)} ({names}) FROM STDIN WITH (FORMAT csv)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(statement, buffer)
    finally:
        cursor.close()
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


def _insert_sqlite(conn: Connection, ids: np.ndarray, values: np.ndarray, month: str, batch_id: str, now: Any) -> int:
    insert = sqlite_insert(survey_responses).on_conflict_do_nothing(index_elements=[ID, MONTH])
    for start in range(0, len(ids), _SQLITE_CHUNK):
        rows = [
            {ID: rid, MONTH: month, "batch_id": batch_id, "ingested_at": now, **dict(zip(FEATURE_NAMES, row, strict=True))}
            for rid, row in zip(ids[start : start + _SQLITE_CHUNK], values[start : start + _SQLITE_CHUNK].tolist(), strict=True)
        ]
        conn.execute(insert, rows)
    count = select(func.count()).select_from(survey_responses).where(survey_responses.c.batch_id == batch_id)
    return int(conn.execute(count).scalar_one())


def _existing_batch(conn: Connection, content_hash: str) -> str | None:
    query = select(ingest_batches.c.batch_id).where(ingest_batches.c.content_hash == content_hash)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def _write(engine: Engine, ids: np.ndarray, values: np.ndarray, month: str, source: str, content_hash: str) -> tuple[str, int, bool]:
    batch_id = str(uuid.uuid4())
    now = utcnow()
    writer = _copy_postgres if engine.dialect.name == "postgresql" else _insert_sqlite
    try:
        with engine.begin() as conn:
            earlier = _existing_batch(conn, content_hash)
            if earlier is not None:
                return earlier, 0, True
            conn.execute(
                ingest_batches.insert().values(
                    batch_id=batch_id, source=source[-2000:], content_hash=content_hash,
                    survey_month=month, rows=len(ids), rows_new=0, ingested_at=now,
                )
            )
            new = writer(conn, ids, values, month, batch_id, now)
            conn.execute(update(ingest_batches).where(ingest_batches.c.batch_id == batch_id).values(rows_new=new))
    except IntegrityError as exc:
        with engine.connect() as conn:
            earlier = _existing_batch(conn, content_hash)
        if earlier is not None:  # the same content was ingested concurrently
            return earlier, 0, True
        raise StoreError(f"ingest of {source} failed, nothing written: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"ingest of {source} failed, nothing written: {exc}") from exc
    return batch_id, new, False


def _ingest(engine: Engine, frame: pd.DataFrame, month: str | None, source: str, bounds: Bounds, error_limit: int, what: str, renumber: Renumber, content: bytes | None) -> IngestResult:
    started = time.perf_counter()
    month, ids, values = _validate(frame, month, bounds, error_limit, what, renumber)
    content_hash = _frame_hash(frame, month) if content is None else _bytes_hash(content, month)
    batch_id, new, already = _write(engine, ids, values, month, source, content_hash)
    rows = len(ids)
    skipped = 0 if already else rows - new
    return IngestResult(source, month, content_hash, rows, new, skipped, already, batch_id, round(time.perf_counter() - started, 4))


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
    what = f"invalid survey data {source} (rows are 0-based positions)"
    return _ingest(engine, frame, month, source, bounds, error_limit, what, int, None)
