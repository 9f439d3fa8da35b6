"""Writers of validated survey rows: PostgreSQL binary COPY and SQLite ``executemany``.

Both run inside the caller's transaction and return how many rows they wrote. PostgreSQL:
a month with no rows yet is COPYed straight into ``survey_responses``; otherwise COPY into
a temporary staging table then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. The COPY
uses PostgreSQL's binary format, built column-wise with numpy/Arrow (no per-row Python),
so the server neither parses text nor converts floats. SQL text is built only from the
schema objects' own names.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    MetaData,
    Table,
    Text,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from persona.features import FEATURE_NAMES
from persona.months import Month
from persona.store.copy_codec import (
    copy_in,
    field,
    fixed_tuples,
    micros,
    stream,
    text_first_tuples,
    tuple_dtype,
)
from persona.store.schema import survey_responses
from persona.survey_input import ID, MONTH

_SQLITE_CHUNK = 20_000
_COPY_BATCH_ROWS = 50_000
_READ = 1 << 23  # bytes per read of the COPY stream (a batch is ~5 MB)
_FEATURES = [(name, ">f8") for name in FEATURE_NAMES]  # float8 fields, after the id

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


def _encode_rows(
    ids: pa.Array, values: np.ndarray, position: int | None, constants: list[bytes]
) -> bytes:
    """Binary-COPY tuples of one batch: id, [position], x1..x10, then constant fields.

    Args:
        ids: Respondent ids (the text field first in every tuple).
        values: float64 features ``(rows, 10)``.
        position: The first row's position (a field counting up), or None for none.
        constants: Values (bytes, without their length) that end every tuple.
    """
    n = len(ids)
    tail = b"".join(field(value) for value in constants)
    fixed = _FEATURES if position is None else [("position", ">i8"), *_FEATURES]
    dtype = tuple_dtype(fixed, count=False)
    if tail:
        dtype = np.dtype([*dtype.descr, ("tail", f"V{len(tail)}")])
    after = fixed_tuples(n, dtype)
    if position is not None:
        after["position"] = np.arange(position, position + n, dtype=np.int64)
    for j, name in enumerate(FEATURE_NAMES):
        after[name] = values[:, j]
    if tail:
        after["tail"] = np.void(tail)
    return text_first_tuples(1 + len(fixed) + len(constants), ids, after)


def _batches(
    ids: pa.Array, values: np.ndarray, positions: bool, constants: list[bytes]
) -> Iterator[bytes]:
    """The tuples in batches of `_COPY_BATCH_ROWS` rows (one ``read`` of the COPY each)."""
    for start in range(0, len(ids), _COPY_BATCH_ROWS):
        stop = start + _COPY_BATCH_ROWS
        position = start if positions else None
        batch = ids.slice(start, _COPY_BATCH_ROWS)
        yield _encode_rows(batch, values[start:stop], position, constants)


@dataclass(frozen=True)
class SurveyRows:
    """The validated rows of one ingest batch, ready to write.

    Attributes:
        ids: Respondent ids (validated, unique).
        values: float64 features ``(rows, 10)``.
        month: The survey month.
        batch_id: The ingest batch the rows belong to.
        now: The ingest time (timezone-aware).
    """

    ids: pa.Array
    values: np.ndarray
    month: Month
    batch_id: str
    now: dt.datetime


def copy_postgres(conn: Connection, rows: SurveyRows, direct: bool = True) -> int:
    """Write rows on PostgreSQL with binary COPY; returns the rows newly written.

    Args:
        conn: A connection inside the ingest transaction.
        rows: What to write.
        direct: Try COPY straight into the table when the month has no rows yet.
    """
    ids, values, month, batch_id, now = rows.ids, rows.values, rows.month, rows.batch_id, rows.now
    month_taken = select(survey_responses.c.response_id).where(survey_responses.c[MONTH] == month)
    if direct and conn.execute(month_taken.limit(1)).first() is None:
        # A month with no rows yet cannot conflict (ids are unique within the input): COPY
        # straight into the table. A concurrent writer of the same month makes this fail
        # with a unique violation; the caller then retries through the staging table.
        constants = [month.encode(), batch_id.encode(), struct.pack(">q", micros(now))]
        names = [ID, *FEATURE_NAMES, MONTH, "batch_id", "ingested_at"]
        copy_in(
            conn, survey_responses, names, stream(_batches(ids, values, False, constants)), _READ
        )
        return len(ids)
    staging = _staging
    staging.create(conn, checkfirst=False)
    names = [ID, "position", *FEATURE_NAMES]
    copy_in(conn, staging, names, stream(_batches(ids, values, True, [])), _READ)
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


def insert_sqlite(conn: Connection, rows: SurveyRows, direct: bool = True) -> int:
    """Write rows on SQLite (``executemany``, existing rows skipped); returns rows written.

    Args: as `copy_postgres` (`direct` is ignored).
    """
    ids, values, month, batch_id, now = rows.ids, rows.values, rows.month, rows.batch_id, rows.now
    insert = sqlite_insert(survey_responses).on_conflict_do_nothing(index_elements=[ID, MONTH])
    for start in range(0, len(ids), _SQLITE_CHUNK):
        chunk = [
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
        conn.execute(insert, chunk)
    count = (
        select(func.count())
        .select_from(survey_responses)
        .where(survey_responses.c.batch_id == batch_id)
    )
    return int(conn.execute(count).scalar_one())
