"""Writers of validated survey rows: PostgreSQL binary COPY and SQLite ``executemany``.

Both run inside the caller's transaction and return how many rows they wrote. A month with
no rows yet is written straight into ``survey_responses``; otherwise the rows go to a
temporary staging table, are compared with the stored month (`staged_conflicts`,
`staged_equal_stored`) and then added with ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING`` (`insert_staged`), the same SQL on both stores. The PostgreSQL COPY
uses PostgreSQL's binary format, built column-wise with numpy/Arrow (no per-row Python),
so the server neither parses text nor converts floats. SQL text is built only from the
schema objects' own names.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
    and_,
    func,
    literal,
    or_,
    select,
    true,
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
    ids: pa.Array, values: np.ndarray, offset: int | None, constants: list[bytes]
) -> Iterator[bytes]:
    """The tuples in batches of `_COPY_BATCH_ROWS` rows (one ``read`` of the COPY each).

    `offset`: the input position of the first row (a position field), or None for none.
    """
    for start in range(0, len(ids), _COPY_BATCH_ROWS):
        stop = start + _COPY_BATCH_ROWS
        position = None if offset is None else offset + start
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
        offset: The input position of the first row (a chunk of a large file).
    """

    ids: pa.Array
    values: np.ndarray
    month: Month
    batch_id: str
    now: dt.datetime
    offset: int = 0


def copy_postgres(conn: Connection, rows: SurveyRows, staged: bool = False) -> int:
    """Write rows on PostgreSQL with binary COPY; returns the rows written.

    Args:
        conn: A connection inside the ingest transaction.
        rows: What to write.
        staged: Into the staging table (`create_staging`), else straight into
            ``survey_responses`` (a month with no rows yet: nothing can conflict).
    """
    ids, values = rows.ids, rows.values
    if staged:
        names = [ID, "position", *FEATURE_NAMES]
        copy_in(conn, _staging, names, stream(_batches(ids, values, rows.offset, [])), _READ)
        return len(ids)
    constants = [rows.month.encode(), rows.batch_id.encode(), struct.pack(">q", micros(rows.now))]
    names = [ID, *FEATURE_NAMES, MONTH, "batch_id", "ingested_at"]
    copy_in(conn, survey_responses, names, stream(_batches(ids, values, None, constants)), _READ)
    return len(ids)


def insert_sqlite(conn: Connection, rows: SurveyRows, staged: bool = False) -> int:
    """Write rows on SQLite with ``executemany``; returns the rows written.

    Args: as `copy_postgres`.
    """
    table = _staging if staged else survey_responses
    constants = (
        {} if staged else {MONTH: rows.month, "batch_id": rows.batch_id, "ingested_at": rows.now}
    )
    for start in range(0, len(rows.ids), _SQLITE_CHUNK):
        ids = rows.ids.slice(start, _SQLITE_CHUNK).to_pylist()
        chunk = [
            {
                ID: rid,
                **({"position": rows.offset + start + k} if staged else {}),
                **constants,
                **dict(zip(FEATURE_NAMES, row, strict=True)),
            }
            for k, (rid, row) in enumerate(
                zip(ids, rows.values[start : start + _SQLITE_CHUNK].tolist(), strict=True)
            )
        ]
        conn.execute(table.insert(), chunk)
    return len(rows.ids)


def create_staging(conn: Connection) -> None:
    """Create the (temporary, empty) staging table in the transaction."""
    _staging.drop(conn, checkfirst=True)  # SQLite keeps a temporary table per connection
    _staging.create(conn)


def drop_staging(conn: Connection) -> None:
    """Drop the staging table (a delivery stages each of its files in turn)."""
    _staging.drop(conn)


def _stored_match(month: Month) -> Any:
    """The join of staged rows with the stored rows of the same respondent in `month`."""
    stored = survey_responses
    return _staging.join(stored, and_(stored.c[ID] == _staging.c[ID], stored.c[MONTH] == month))


def staged_conflicts(conn: Connection, month: Month, first: int) -> tuple[int, list[str]]:
    """Staged rows whose respondent is stored in `month` with different answers.

    Returns:
        Their count and the first `first` ids, in input order.
    """
    differs = or_(*[_staging.c[n] != survey_responses.c[n] for n in FEATURE_NAMES])
    base = select(_staging.c[ID]).select_from(_stored_match(month)).where(differs)
    count = conn.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    ids = conn.execute(base.order_by(_staging.c.position).limit(first)).scalars().all()
    return int(count), [str(i) for i in ids]


def staged_equal_stored(conn: Connection, month: Month) -> bool:
    """Whether the staged rows are exactly the month's stored rows (ids and answers)."""
    same = and_(*[_staging.c[n] == survey_responses.c[n] for n in FEATURE_NAMES])
    matching = select(func.count()).select_from(_stored_match(month)).where(same)
    staged = select(func.count()).select_from(_staging)
    stored = select(func.count()).where(survey_responses.c[MONTH] == month)
    counts = [int(conn.execute(q).scalar_one()) for q in (matching, staged, stored)]
    return counts[0] == counts[1] == counts[2]


def insert_staged(conn: Connection, rows: SurveyRows) -> int:
    """Insert the staged rows not stored yet, in input order; returns the rows inserted."""
    source = (
        select(
            _staging.c[ID],
            literal(rows.month, survey_responses.c[MONTH].type),
            *[_staging.c[name] for name in FEATURE_NAMES],
            literal(rows.batch_id, survey_responses.c.batch_id.type),
            literal(rows.now, survey_responses.c.ingested_at.type),
        )
        .where(true())  # SQLite: tells its parser the ON CONFLICT below is no join's ON
        .order_by(_staging.c.position)
    )
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    insert = dialect_insert(survey_responses).from_select(
        [ID, MONTH, *FEATURE_NAMES, "batch_id", "ingested_at"], source
    )
    result = conn.execute(insert.on_conflict_do_nothing(index_elements=[ID, MONTH]))
    return int(result.rowcount)


def staged_duplicates(conn: Connection, first: int) -> list[str]:
    """Respondent ids staged more than once (the first `first`, sorted)."""
    query = (
        select(_staging.c[ID])
        .group_by(_staging.c[ID])
        .having(func.count() > 1)
        .order_by(_staging.c[ID])
        .limit(first)
    )
    return [str(i) for i in conn.execute(query).scalars()]
