"""Binary COPY payloads of `persona_assignments` rows, built with numpy (PostgreSQL).

The numeric columns (response id, distance, margin, time) are one fixed-width record per
row; the text columns (month, model name, version, persona id/name, nearest id) come from a
small table of pre-encoded byte strings, one per (label, nearest) combination.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

from persona.model import Prediction

_COPY_CHUNK = 1 << 17  # rows per piece of the COPY stream
# Numeric columns first (fixed width), then the text columns (one byte string per label pair).
COPY_COLUMNS = ("response_id", "distance", "margin", "assigned_at", "survey_month",
                 "model_name", "model_version", "persona_id", "persona_name",
                 "nearest_persona_id")  # fmt: skip
# PostgreSQL binary COPY: one tuple = int16 field count, then (int32 length, value) per field.
_FIXED = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("rid", ">i8"), ("l1", ">i4"), ("dist", ">f8"),
     ("l2", ">i4"), ("margin", ">f8"), ("l3", ">i4"), ("time", ">i8")]
)  # fmt: skip
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_SMALL = 64  # distinct values up to which factorize compares arrays instead of hashing


def factorize(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Integer codes of an array of a few distinct labels, in order of first appearance.

    Args:
        values: Labels (numpy strings or objects).

    Returns:
        ``(codes, uniques)`` with ``uniques[codes] == values``.
    """
    values = np.asarray(values)
    codes = np.full(len(values), -1, dtype=np.int64)
    uniques: list[Any] = []
    left = np.arange(len(values))
    while len(left) and len(uniques) < _SMALL and values.dtype.kind in "SU":
        same = values[left] == values[left[0]]
        codes[left[same]] = len(uniques)
        uniques.append(values[left[0]].item())
        left = left[~same]
    if len(left):  # many distinct values or objects: hash them
        rest, found = pd.factorize(values[left].astype(object))
        codes[left] = rest + len(uniques)
        uniques += list(found)
    return codes, uniques


def copy_stream(
    ids: np.ndarray, prediction: Prediction, context: tuple[Any, ...], encoding: str
) -> Iterator[bytes]:
    """The binary COPY payload of `COPY_COLUMNS`, in pieces of `_COPY_CHUNK` rows."""
    month, model_name, model_version, now = context

    def field(value: object) -> bytes:
        data = str(value).encode(encoding)
        return struct.pack(">i", len(data)) + data

    pid, pid_values = factorize(prediction.persona_id)
    name, name_values = factorize(prediction.persona_name)
    near, near_values = factorize(prediction.nearest_id)
    pair, pairs = pd.factorize(pid * len(name_values) + name)
    combo = pair * len(near_values) + near
    lineage = field(month) + field(model_name) + field(model_version)
    labels = [field(pid_values[p // len(name_values)]) + field(name_values[p % len(name_values)])
              for p in pairs]  # fmt: skip
    texts = [lineage + label + field(n) for label in labels for n in near_values]
    lengths = np.array([len(t) for t in texts]) + _FIXED.itemsize
    table = np.zeros((len(texts), max(lengths) - _FIXED.itemsize), dtype=np.uint8)
    for row, text in zip(table, texts, strict=True):
        row[: len(text)] = np.frombuffer(text, dtype=np.uint8)
    micros = (now - _PG_EPOCH) // dt.timedelta(microseconds=1)
    yield _COPY_HEADER
    for start in range(0, len(ids), _COPY_CHUNK):
        part = slice(start, start + _COPY_CHUNK)
        fixed = np.empty(len(ids[part]), dtype=_FIXED)
        fixed["n"], fixed["l0"], fixed["l1"], fixed["l2"], fixed["l3"] = 10, 8, 8, 8, 8
        fixed["rid"], fixed["dist"] = ids[part], prediction.distance[part]
        fixed["margin"], fixed["time"] = prediction.margin[part], micros
        rows = np.empty((len(fixed), _FIXED.itemsize + table.shape[1]), dtype=np.uint8)
        rows[:, : _FIXED.itemsize] = fixed.view(np.uint8).reshape(len(fixed), -1)
        rows[:, _FIXED.itemsize :] = table[combo[part]]
        keep = np.arange(rows.shape[1]) < lengths[combo[part]][:, None]
        yield rows[keep].tobytes()  # each row cut to its own length, rows in order
    yield _COPY_TRAILER


class _Reader:
    """A read-only file over an iterator of byte strings, for `copy_expert`."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not len(self._buffer):
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._buffer = memoryview(piece)
        size = len(self._buffer) if size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(out)


def copy_into(conn: Connection, table: Table, pieces: Iterator[bytes]) -> None:
    """Stream a binary COPY payload into `table` (`COPY_COLUMNS`) on the connection.

    Args:
        conn: An open connection inside the caller's transaction.
        table: The target table (the real one or the temporary staging table).
        pieces: The payload, e.g. from `copy_stream`.
    """
    import psycopg2

    quote = conn.dialect.identifier_preparer
    names = ", ".join(quote.quote(name) for name in COPY_COLUMNS)
    statement = f"COPY {quote.format_table(table)} ({names}) FROM STDIN WITH (FORMAT binary)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(statement, _Reader(pieces), size=1 << 20)
    except psycopg2.Error as exc:  # the raw cursor's error, as SQLAlchemy would raise it
        raise DBAPIError.instance(statement, None, exc, psycopg2.Error) from exc
    finally:
        cursor.close()
