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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
from persona.store.schema import survey_responses
from persona.store.survey_input import ID, MONTH

_SQLITE_CHUNK = 20_000
_COPY_BATCH_ROWS = 50_000
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# Binary COPY field of a float8: int32 length 8, then the big-endian IEEE double.
_FEATURE_FIELDS = [
    field for j in range(len(FEATURE_NAMES)) for field in ((f"n{j}", ">i4"), (f"v{j}", ">f8"))
]

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

    Each tuple is ``int16 field count, int32 length + id bytes, fixed-width fields``; the
    fixed part is one structured numpy record per row and the variable-length id is spliced
    in with Arrow's element-wise concatenation.
    """
    if isinstance(ids, pa.ChunkedArray):  # ids from a multi-block CSV read
        ids = ids.combine_chunks()
    n = len(ids)
    tail = b"".join(struct.pack(">i", len(value)) + value for value in constants)
    fields: list[tuple[str, str]] = [("np", ">i4"), ("p", ">i8")] if position is not None else []
    fields += _FEATURE_FIELDS
    if tail:
        fields.append(("tail", f"V{len(tail)}"))
    after = np.empty(n, dtype=fields)
    if position is not None:
        after["np"] = 8
        after["p"] = np.arange(position, position + n, dtype=np.int64)
    for j in range(len(FEATURE_NAMES)):
        after[f"n{j}"] = 8
        after[f"v{j}"] = values[:, j]
    if tail:
        after["tail"] = np.void(tail)
    ids_binary = ids.cast(pa.binary())
    before = np.empty(n, dtype=[("count", ">i2"), ("length", ">i4")])
    before["count"] = 1 + (position is not None) + len(FEATURE_NAMES) + len(constants)
    before["length"] = pc.binary_length(ids_binary).to_numpy(zero_copy_only=False)
    rows = pc.binary_join_element_wise(
        _as_binary(before), ids_binary, _as_binary(after), pa.scalar(b"", pa.binary())
    )
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset : rows.offset + n + 1]
    data = rows.buffers()[2]
    assert data is not None
    return data[int(offsets[0]) : int(offsets[-1])].to_pybytes()


def _as_binary(records: np.ndarray) -> pa.Array:
    """A structured numpy array as an Arrow binary array of one element per record."""
    width = records.dtype.itemsize
    buffer = pa.py_buffer(np.ascontiguousarray(records).view(np.uint8))
    fixed = pa.Array.from_buffers(pa.binary(width), len(records), [None, buffer])
    return fixed.cast(pa.binary())


class _BinaryCopyStream:
    """File-like source for ``copy_expert``: the binary COPY stream, one batch per read.

    psycopg2 sends whatever one ``read`` returns, so the next batch is encoded while the
    server inserts the previous one.
    """

    def __init__(
        self, ids: pa.Array, values: np.ndarray, positions: bool, constants: list[bytes]
    ) -> None:
        self._chunks = self._generate(ids, values, positions, constants)

    @staticmethod
    def _generate(
        ids: pa.Array, values: np.ndarray, positions: bool, constants: list[bytes]
    ) -> Iterator[bytes]:
        yield _COPY_HEADER
        for start in range(0, len(ids), _COPY_BATCH_ROWS):
            stop = start + _COPY_BATCH_ROWS
            position = start if positions else None
            batch = ids.slice(start, _COPY_BATCH_ROWS)
            yield _encode_rows(batch, values[start:stop], position, constants)
        yield _COPY_TRAILER

    def read(self, size: int = -1) -> bytes:
        return next(self._chunks, b"")


def _copy(conn: Connection, target: Table, names: list[str], stream: _BinaryCopyStream) -> None:
    """COPY the binary stream into `target` (column names from the schema objects)."""
    quote = conn.dialect.identifier_preparer
    columns = ", ".join(quote.quote(target.c[name].name) for name in names)
    statement = f"COPY {quote.format_table(target)} ({columns}) FROM STDIN WITH (FORMAT binary)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(statement, stream, size=1 << 23)
    finally:
        cursor.close()


def copy_postgres(
    conn: Connection,
    ids: pa.Array,
    values: np.ndarray,
    month: str,
    batch_id: str,
    now: Any,
    direct: bool = True,
) -> int:
    """Write rows on PostgreSQL with binary COPY; returns the rows newly written.

    Args:
        conn: A connection inside the ingest transaction.
        ids: Respondent ids (validated, unique).
        values: float64 features ``(rows, 10)``.
        month: The survey month.
        batch_id: The ingest batch the rows belong to.
        now: The ingest time (timezone-aware).
        direct: Try COPY straight into the table when the month has no rows yet.
    """
    month_taken = select(survey_responses.c.response_id).where(survey_responses.c[MONTH] == month)
    if direct and conn.execute(month_taken.limit(1)).first() is None:
        # A month with no rows yet cannot conflict (ids are unique within the input): COPY
        # straight into the table. A concurrent writer of the same month makes this fail
        # with a unique violation; the caller then retries through the staging table.
        micros = (now - _PG_EPOCH) // dt.timedelta(microseconds=1)
        constants = [month.encode(), batch_id.encode(), struct.pack(">q", micros)]
        names = [ID, *FEATURE_NAMES, MONTH, "batch_id", "ingested_at"]
        _copy(conn, survey_responses, names, _BinaryCopyStream(ids, values, False, constants))
        return len(ids)
    staging = _staging
    staging.create(conn, checkfirst=False)
    names = [ID, "position", *FEATURE_NAMES]
    _copy(conn, staging, names, _BinaryCopyStream(ids, values, True, []))
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


def insert_sqlite(
    conn: Connection,
    ids: pa.Array,
    values: np.ndarray,
    month: str,
    batch_id: str,
    now: Any,
    direct: bool = True,
) -> int:
    """Write rows on SQLite (``executemany``, existing rows skipped); returns rows written.

    Args: as `copy_postgres` (`direct` is ignored).
    """
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
