"""Binary COPY payloads of `persona_assignments` rows, built with numpy (PostgreSQL).

The numeric columns (response id, distance, margin, time) are one fixed-width record per
row; the text columns (month, model name, version, persona id/name, nearest id) come from a
small table of pre-encoded byte strings, one per (label, nearest) combination.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, replace
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


class LabelEncoder:
    """Binary COPY tuples (`COPY_COLUMNS`) of the labels of one write, chunk by chunk.

    Args:
        context: ``(month, model name, model version, assigned_at)``, the same on every row.
        encoding: The connection's client encoding (Python codec name).
    """

    def __init__(self, context: tuple[Any, ...], encoding: str) -> None:
        month, model_name, model_version, now = context
        self._encoding = encoding
        self._lineage = self._field(month) + self._field(model_name) + self._field(model_version)
        self._assigned_at = micros(now)

    def _field(self, value: object) -> bytes:
        return text_field(value, self._encoding)

    def tuples(
        self,
        ids: np.ndarray,
        prediction: Prediction,
        codes: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> bytes:
        """The tuples of one chunk of rows, in row order (no header or trailer).

        Args:
            ids: The response id of each row.
            prediction: The labels of the rows.
            codes: `label_codes` of `prediction` when the caller has them already.
        """
        if not len(ids):
            return b""
        code, first = label_codes(prediction) if codes is None else codes
        texts = TailTable(
            [
                self._lineage
                + self._field(prediction.persona_id[row])
                + self._field(prediction.persona_name[row])
                + self._field(prediction.nearest_id[row])
                for row in first.tolist()
            ]
        )
        fixed = fixed_tuples(len(ids), _FIXED, len(COPY_COLUMNS))
        fixed["response_id"], fixed["distance"] = ids, prediction.distance
        fixed["margin"], fixed["assigned_at"] = prediction.margin, self._assigned_at
        return texts.tuples(fixed, code)


def label_codes(prediction: Prediction) -> tuple[np.ndarray, np.ndarray]:
    """A code per row for its (persona id, persona name, nearest id), and a row of each code.

    A model's own prediction (`nearest_index` filled) holds the persona id and name and the
    nearest id that (nearest persona, assigned) give, so integers are compared; otherwise
    (e.g. labels from the REST API, index -1) the texts are.

    Returns:
        ``(codes, first)``: codes 0..k-1 in order of first appearance, and the first row
        of each code.
    """
    if len(prediction) and bool((prediction.nearest_index >= 0).all()):
        key = prediction.nearest_index * 2 + prediction.assigned
    else:
        pid = factorize(prediction.persona_id)[0]
        name, names = factorize(prediction.persona_name)
        near, nears = factorize(prediction.nearest_id)
        key = (pid * len(names) + name) * len(nears) + near
    codes, uniques = pd.factorize(key)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return codes.astype(np.int64, copy=False), first


def rows_of(prediction: Prediction, part: slice | np.ndarray) -> Prediction:
    """The labels of some rows: a slice (views, no copy) or an index array."""
    return replace(
        prediction, **{f.name: getattr(prediction, f.name)[part] for f in fields(Prediction)}
    )


def copy_stream(
    ids: np.ndarray, prediction: Prediction, context: tuple[Any, ...], encoding: str
) -> Iterator[bytes]:
    """The binary COPY payload of `COPY_COLUMNS`, in pieces of `_COPY_CHUNK` rows."""
    encoder = LabelEncoder(context, encoding)
    parts = (slice(start, start + _COPY_CHUNK) for start in range(0, len(ids), _COPY_CHUNK))
    return stream(encoder.tuples(ids[part], rows_of(prediction, part)) for part in parts)


def copy_into(conn: Connection, table: Table, pieces: Iterator[bytes]) -> None:
    """Stream a binary COPY payload into `table` (`COPY_COLUMNS`) on the connection.

    Args:
        conn: An open connection inside the caller's transaction.
        table: The target table (the real one or the temporary staging table).
        pieces: The payload, e.g. from `copy_stream`.
    """
    copy_in(conn, table, COPY_COLUMNS, pieces, _READ)
