"""PostgreSQL binary COPY, the one codec of the store: header, trailer, time, tuples, streams.

The format (PostgreSQL manual, "COPY", binary format): an 11-byte signature, an int32 flags
word and an int32 header-extension length, then one tuple per row (int16 field count, then
per field an int32 byte length and the value, all big-endian), then the int16 ``-1``
trailer. A ``timestamptz`` is int64 microseconds since 2000-01-01 UTC, a ``float8`` the
IEEE double, text the encoded bytes. Tuples are built column-wise with numpy and Arrow (no
per-row Python); a payload whose tuples all have one width is read back as one structured
array. Writers: `store.survey_write` (survey rows), `store.assignment_copy` (labels);
readers: `store.survey_queries` (whole payloads), `store.copy_stream` (chunk by chunk, also
the COPY IN on a thread).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

from persona.errors import StoreError

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_COUNT = ("n", ">i2")  # the int16 field count that starts every tuple


def micros(when: dt.datetime) -> int:
    """A timezone-aware time as PostgreSQL's int64 microseconds since 2000-01-01 UTC."""
    return (when - EPOCH) // dt.timedelta(microseconds=1)


def field(value: bytes) -> bytes:
    """One field: its int32 byte length, then the bytes."""
    return struct.pack(">i", len(value)) + value


def text_field(value: object, encoding: str = "utf-8") -> bytes:
    """A text field (``str(value)`` in the connection's encoding)."""
    return field(str(value).encode(encoding))


def tuple_dtype(fields: Sequence[tuple[str, str]], *, count: bool = True) -> np.dtype:
    """The record of fixed-width fields, each after its int32 length ``l_<name>``.

    Args:
        fields: ``(name, numpy type)`` per field, e.g. ``("distance", ">f8")``.
        count: Start with the int16 field count ``n`` (a whole tuple, or its start).

    Returns:
        A structured dtype laid out exactly as the fields are on the wire.
    """
    layout = [_COUNT] if count else []
    for name, kind in fields:
        layout += [(f"l_{name}", ">i4"), (name, kind)]
    return np.dtype(layout)


def _lengths(dtype: np.dtype) -> dict[str, int]:
    """The byte length each ``l_<name>`` field of a `tuple_dtype` must hold."""
    names = dtype.names or ()
    return {n: dtype.fields[n[2:]][0].itemsize for n in names if n.startswith("l_")}  # type: ignore[index]


def fixed_tuples(rows: int, dtype: np.dtype, fields: int | None = None) -> np.ndarray:
    """Empty records of a `tuple_dtype`, their lengths (and field count) already filled.

    Args:
        rows: How many records.
        dtype: From `tuple_dtype`.
        fields: The tuple's field count (when the dtype starts with ``n``).
    """
    records = np.empty(rows, dtype=dtype)
    for name, size in _lengths(dtype).items():
        records[name] = size
    if fields is not None:
        records["n"] = fields
    return records


def _as_binary(records: np.ndarray) -> pa.Array:
    """A structured numpy array as an Arrow binary array of one element per record."""
    width = records.dtype.itemsize
    buffer = pa.py_buffer(np.ascontiguousarray(records).view(np.uint8))
    fixed = pa.Array.from_buffers(pa.binary(width), len(records), [None, buffer])
    return fixed.cast(pa.binary())


def text_first_tuples(fields: int, text: pa.Array, after: np.ndarray) -> bytes:
    """Tuples whose first field is text and whose other fields are fixed-width records.

    Each tuple is ``int16 fields, int32 length + text[i], after[i]``; the variable-length
    text is spliced in with Arrow's element-wise concatenation.

    Args:
        fields: The field count of every tuple.
        text: The first field of each row (strings, UTF-8 on the wire).
        after: One record per row with the remaining fields (e.g. `fixed_tuples` with
            ``count=False`` dtype).

    Returns:
        The tuples, concatenated in row order.
    """
    if isinstance(text, pa.ChunkedArray):  # e.g. ids from a multi-block CSV read
        text = text.combine_chunks()
    rows = len(text)
    binary = text.cast(pa.binary())
    before = np.empty(rows, dtype=[_COUNT, ("length", ">i4")])
    before["n"] = fields
    before["length"] = pc.binary_length(binary).to_numpy(zero_copy_only=False)
    joined = pc.binary_join_element_wise(
        _as_binary(before), binary, _as_binary(after), pa.scalar(b"", pa.binary())
    )
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
    offsets = offsets[joined.offset : joined.offset + rows + 1]
    data = joined.buffers()[2]
    assert data is not None
    return data[int(offsets[0]) : int(offsets[-1])].to_pybytes()


class TailTable:
    """Tuples that end with one of a few pre-encoded byte strings (e.g. repeated text fields).

    Args:
        tails: The byte strings (whole fields, lengths included); a row picks one by index.
    """

    def __init__(self, tails: Sequence[bytes]) -> None:
        self.lengths = np.array([len(t) for t in tails], dtype=np.int64)
        self.table = np.zeros((len(tails), int(self.lengths.max())), dtype=np.uint8)
        for row, tail in zip(self.table, tails, strict=True):
            row[: len(tail)] = np.frombuffer(tail, dtype=np.uint8)

    def tuples(self, fixed: np.ndarray, pick: np.ndarray) -> bytes:
        """The tuples ``fixed[i]`` followed by tail ``pick[i]``, concatenated in row order."""
        width = fixed.dtype.itemsize
        rows = np.empty((len(fixed), width + self.table.shape[1]), dtype=np.uint8)
        rows[:, :width] = fixed.view(np.uint8).reshape(len(fixed), -1)
        rows[:, width:] = self.table[pick]
        keep = np.arange(rows.shape[1]) < (self.lengths[pick] + width)[:, None]
        return rows[keep].tobytes()  # each row cut to its own length, rows in order


def stream(batches: Iterator[bytes]) -> Iterator[bytes]:
    """A whole payload: the header, the batches of tuples, the trailer."""
    yield HEADER
    yield from batches
    yield TRAILER


class _Reader:
    """A read-only file over an iterator of byte strings, for ``copy_expert``.

    psycopg2 sends whatever one ``read`` returns, so the next piece is encoded while the
    server inserts the previous one; a piece no larger than the read size goes out as is.
    """

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not len(self._buffer):
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            if piece and (size < 0 or len(piece) <= size):
                return piece
            self._buffer = memoryview(piece)
        size = len(self._buffer) if size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(out)


def copy_in(
    conn: Connection, table: Table, names: Sequence[str], payload: Iterator[bytes], size: int
) -> None:
    """Stream a binary COPY payload into `table` on the connection (psycopg2).

    Args:
        conn: An open connection inside the caller's transaction.
        table: The target table (its own and its columns' names make the SQL text).
        names: The columns, in the payload's field order.
        payload: The pieces, e.g. from `stream`.
        size: Bytes psycopg2 asks for per read.

    Raises:
        sqlalchemy.exc.DBAPIError: The driver's error, as SQLAlchemy would raise it (e.g.
            an `IntegrityError` on a unique violation).
    """
    import psycopg2

    quote = conn.dialect.identifier_preparer
    columns = ", ".join(quote.quote(table.c[name].name) for name in names)
    statement = f"COPY {quote.format_table(table)} ({columns}) FROM STDIN WITH (FORMAT binary)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(statement, _Reader(payload), size=size)
    except psycopg2.Error as exc:  # the raw cursor's error, as SQLAlchemy would raise it
        raise DBAPIError.instance(statement, None, exc, psycopg2.Error) from exc
    finally:
        cursor.close()


def read_tuples(payload: Any, dtype: np.dtype, count: int) -> np.ndarray:
    """View a binary COPY payload whose tuples all have the layout `dtype` (no copy).

    Args:
        payload: The bytes (a buffer) of ``COPY ... TO STDOUT WITH (FORMAT binary)``.
        dtype: From `tuple_dtype` (with the field count).
        count: The rows expected.

    Returns:
        The records, in the order the server sent them.

    Raises:
        StoreError: No binary header, a size that is not `count` tuples, or a field whose
            length is not its width (NULL or a wider value).
    """
    if bytes(payload[:11]) != SIGNATURE or len(payload) < 21:
        raise StoreError("unexpected COPY output from PostgreSQL (no binary header)")
    start = 19 + struct.unpack_from(">i", payload, 15)[0]
    body = len(payload) - start - 2
    if body != count * dtype.itemsize or bytes(payload[-2:]) != TRAILER:
        raise StoreError(f"unexpected COPY output size: {body} bytes for {count} rows")
    records = np.frombuffer(payload, dtype=dtype, count=count, offset=start)
    check_tuples(records, dtype)
    return records


def check_tuples(records: np.ndarray, dtype: np.dtype) -> None:
    """Check that every record's field count and field lengths are those of `dtype`.

    Raises:
        StoreError: A field whose length is not its width (NULL or a wider value).
    """
    fields = len(_lengths(dtype))
    for name, size in {"n": fields, **_lengths(dtype)}.items():
        if len(records) and not (records[name] == size).all():
            raise StoreError(f"unexpected COPY output: field {name} is not {size} bytes")
