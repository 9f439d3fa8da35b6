"""Binary COPY payloads of `persona_assignments` rows, built with numpy (PostgreSQL).

The numeric columns (response id, distance, margin, time) are one fixed-width record per
row; the text columns (month, model name, version, persona id/name, nearest id) come from a
small table of pre-encoded byte strings, one per (label, nearest) combination.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table

from persona.model import Prediction
from persona.store.copy_codec import (
    TailTable,
    copy_in,
    fixed_tuples,
    micros,
    stream,
    text_field,
    tuple_dtype,
)

_COPY_CHUNK = 1 << 17  # rows per piece of the COPY stream
_READ = 1 << 20  # bytes per read of the COPY stream
# Numeric columns first (fixed width), then the text columns (one byte string per label pair).
COPY_COLUMNS = ("response_id", "distance", "margin", "assigned_at", "survey_month",
                 "model_name", "model_version", "persona_id", "persona_name",
                 "nearest_persona_id")  # fmt: skip
_FIXED = tuple_dtype(
    [("response_id", ">i8"), ("distance", ">f8"), ("margin", ">f8"), ("assigned_at", ">i8")]
)
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
        return text_field(value, encoding)

    pid, pid_values = factorize(prediction.persona_id)
    name, name_values = factorize(prediction.persona_name)
    near, near_values = factorize(prediction.nearest_id)
    pair, pairs = pd.factorize(pid * len(name_values) + name)
    combo = pair * len(near_values) + near
    lineage = field(month) + field(model_name) + field(model_version)
    labels = [field(pid_values[p // len(name_values)]) + field(name_values[p % len(name_values)])
              for p in pairs]  # fmt: skip
    texts = TailTable([lineage + label + field(n) for label in labels for n in near_values])
    assigned_at = micros(now)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(ids), _COPY_CHUNK):
            part = slice(start, start + _COPY_CHUNK)
            fixed = fixed_tuples(len(ids[part]), _FIXED, len(COPY_COLUMNS))
            fixed["response_id"], fixed["distance"] = ids[part], prediction.distance[part]
            fixed["margin"], fixed["assigned_at"] = prediction.margin[part], assigned_at
            yield texts.tuples(fixed, combo[part])

    return stream(pieces())


def copy_into(conn: Connection, table: Table, pieces: Iterator[bytes]) -> None:
    """Stream a binary COPY payload into `table` (`COPY_COLUMNS`) on the connection.

    Args:
        conn: An open connection inside the caller's transaction.
        table: The target table (the real one or the temporary staging table).
        pieces: The payload, e.g. from `copy_stream`.
    """
    copy_in(conn, table, COPY_COLUMNS, pieces, _READ)
