"""`persona_assignments`: append-only persona labels with lineage (model name + version).

A row is unique per (response, model name, model version): writing the same month with the
same model again inserts nothing. PostgreSQL takes a binary COPY of the numeric columns
(response id, label code, nearest code, distance, margin) into a temporary staging table,
the few distinct persona ids/names into a second one, then one
``INSERT ... SELECT ... JOIN ... ON CONFLICT DO NOTHING``. SQLite an ``executemany`` insert
with ``ON CONFLICT DO NOTHING``. SQL text is built only from the schema objects' names.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import StoreError
from persona.model import Prediction
from persona.months import parse_month
from persona.store.engine import utcnow
from persona.store.schema import persona_assignments as pa_table

_UNIQUE = ["response_id", "model_name", "model_version"]
_SQLITE_CHUNK = 20_000
_staging_meta = MetaData()
_staging = Table(
    "persona_assign_staging",
    _staging_meta,
    Column("response_id", BigInteger, nullable=False),
    Column("label", SmallInteger, nullable=False),
    Column("nearest", SmallInteger, nullable=False),
    Column("distance", Float(precision=53), nullable=False),
    Column("margin", Float(precision=53), nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_labels = Table(
    "persona_assign_labels",
    _staging_meta,
    Column("code", SmallInteger, nullable=False),
    Column("persona_id", Text, nullable=False),
    Column("persona_name", Text, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
# PostgreSQL binary COPY: one tuple = int16 field count, then (int32 length, value) per field.
_ROW = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("rid", ">i8"), ("l1", ">i4"), ("label", ">i2"),
     ("l2", ">i4"), ("nearest", ">i2"), ("l3", ">i4"), ("dist", ">f8"), ("l4", ">i4"),
     ("margin", ">f8")]
)  # fmt: skip
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def write_assignments(
    engine: Engine,
    response_ids: Sequence[int] | np.ndarray,
    month: str,
    model_name: str,
    model_version: str,
    prediction: Prediction,
) -> int:
    """Append the labels of a batch of responses; existing (response, model, version) rows stay.

    Args:
        engine: The store engine.
        response_ids: Response id of each labelled row, in prediction order.
        month: ``YYYY-MM`` of the responses.
        model_name: Registered model name (lineage).
        model_version: Registered model version (lineage).
        prediction: The labels (persona id/name, nearest id, distance, margin).

    Returns:
        Rows newly written.

    Raises:
        StoreError: The write failed (nothing is written then).
    """
    month = parse_month(month)
    ids = np.asarray(response_ids, dtype=np.int64)
    if len(ids) != len(prediction):
        raise StoreError(f"{len(ids)} response ids for {len(prediction)} predictions")
    if not len(ids):
        return 0
    context = (month, model_name, str(model_version), utcnow())
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                return _copy_postgres(conn, ids, prediction, context)
            return _insert_sqlite(conn, ids, prediction, context)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot write persona assignments of {month}: {exc}") from exc


def _codes(prediction: Prediction) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
    """Small integer codes for persona ids, with the (code, id, name) lookup rows."""
    label, label_ids = pd.factorize(np.asarray(prediction.persona_id, dtype=object))
    names = np.asarray(prediction.persona_name, dtype=object)
    first = np.unique(label, return_index=True)[1]  # codes are 0..m-1
    near_ids = pd.Index(label_ids).append(pd.Index(prediction.nearest_id)).unique()
    nearest = near_ids.get_indexer(pd.Index(np.asarray(prediction.nearest_id, dtype=object)))
    lookup = [(i, str(pid), str(names[first[i]])) for i, pid in enumerate(label_ids)]
    lookup += [(i, str(pid), str(pid)) for i, pid in enumerate(near_ids) if i >= len(label_ids)]
    return label.astype(np.int16), nearest.astype(np.int16), lookup


def _copy_postgres(
    conn: Connection, ids: np.ndarray, prediction: Prediction, context: tuple[Any, ...]
) -> int:
    month, model_name, model_version, now = context
    label, nearest, lookup = _codes(prediction)
    _staging.create(conn, checkfirst=False)
    _labels.create(conn, checkfirst=False)
    conn.execute(
        _labels.insert(), [{"code": c, "persona_id": p, "persona_name": n} for c, p, n in lookup]
    )
    rows = np.empty(len(ids), dtype=_ROW)
    rows["n"], rows["rid"], rows["label"], rows["nearest"] = 5, ids, label, nearest
    rows["dist"], rows["margin"] = prediction.distance, prediction.margin
    rows["l0"], rows["l1"], rows["l2"], rows["l3"], rows["l4"] = 8, 2, 2, 8, 8
    buffer = io.BytesIO(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)
    quote = conn.dialect.identifier_preparer
    names = ", ".join(quote.quote(c.name) for c in _staging.columns)
    statement = f"COPY {quote.format_table(_staging)} ({names}) FROM STDIN WITH (FORMAT binary)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(statement, buffer)
    finally:
        cursor.close()
    lab, near, stg, cols = _labels.alias("lab"), _labels.alias("near"), _staging, pa_table.c
    source = select(
        stg.c.response_id,
        literal(month, cols.survey_month.type),
        literal(model_name, cols.model_name.type),
        literal(model_version, cols.model_version.type),
        lab.c.persona_id,
        lab.c.persona_name,
        near.c.persona_id,
        stg.c.distance,
        stg.c.margin,
        literal(now, cols.assigned_at.type),
    ).select_from(stg.join(lab, lab.c.code == stg.c.label).join(near, near.c.code == stg.c.nearest))
    insert = pg_insert(pa_table).from_select(
        ["response_id", "survey_month", "model_name", "model_version", "persona_id",
         "persona_name", "nearest_persona_id", "distance", "margin", "assigned_at"],
        source,
    )  # fmt: skip
    result = conn.execute(insert.on_conflict_do_nothing(index_elements=_UNIQUE))
    return int(result.rowcount)


def _insert_sqlite(
    conn: Connection, ids: np.ndarray, prediction: Prediction, context: tuple[Any, ...]
) -> int:
    month, model_name, model_version, now = context
    before = _count(conn, month, model_name, model_version)
    insert = sqlite_insert(pa_table).on_conflict_do_nothing(index_elements=_UNIQUE)
    columns = zip(
        ids.tolist(),
        prediction.persona_id.tolist(),
        prediction.persona_name.tolist(),
        prediction.nearest_id.tolist(),
        prediction.distance.tolist(),
        prediction.margin.tolist(),
        strict=True,
    )
    fixed = {"survey_month": month, "model_name": model_name, "model_version": model_version,
             "assigned_at": now}  # fmt: skip
    batch: list[dict[str, Any]] = []
    for rid, pid, name, near, dist, marg in columns:
        row = {"response_id": rid, "persona_id": pid, "persona_name": name,
               "nearest_persona_id": near, "distance": dist, "margin": marg}  # fmt: skip
        batch.append({**row, **fixed})
        if len(batch) >= _SQLITE_CHUNK:
            conn.execute(insert, batch)
            batch = []
    if batch:
        conn.execute(insert, batch)
    return _count(conn, month, model_name, model_version) - before


def _where(month: str, model_name: str, model_version: str) -> Any:
    c = pa_table.c
    return (
        (c.survey_month == parse_month(month))
        & (c.model_name == model_name)
        & (c.model_version == str(model_version))
    )


def _count(conn: Connection, month: str, model_name: str, model_version: str) -> int:
    query = (
        select(func.count()).select_from(pa_table).where(_where(month, model_name, model_version))
    )
    return int(conn.execute(query).scalar_one())


def count_assignments(engine: Engine, month: str, model_name: str, model_version: str) -> int:
    """Count the labels a model version wrote for a month.

    Args:
        engine: The store engine.
        month: ``YYYY-MM``.
        model_name: Registered model name.
        model_version: Registered model version.
    """
    try:
        with engine.connect() as conn:
            return _count(conn, month, model_name, model_version)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot count persona assignments of {month}: {exc}") from exc


def persona_mix(engine: Engine, month: str, model_name: str, model_version: str) -> dict[str, int]:
    """Count a model version's labels of a month per persona id.

    Returns:
        ``{persona_id: rows}`` sorted by persona id (``unassigned`` included when present).
    """
    c = pa_table.c
    query = (
        select(c.persona_id, func.count())
        .where(_where(month, model_name, model_version))
        .group_by(c.persona_id)
        .order_by(c.persona_id)
    )
    try:
        with engine.connect() as conn:
            return {str(pid): int(n) for pid, n in conn.execute(query)}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the persona mix of {month}: {exc}") from exc


def load_assignments(
    engine: Engine, month: str, model_name: str | None = None, model_version: str | None = None
) -> pd.DataFrame:
    """Load a month's labels, optionally of one model (and version), by response id.

    Args:
        engine: The store engine.
        month: ``YYYY-MM``.
        model_name: Only this model (all models when None).
        model_version: Only this version (all versions when None).

    Returns:
        Every column of `persona_assignments` (empty frame when there are none).
    """
    c = pa_table.c
    condition = c.survey_month == parse_month(month)
    if model_name is not None:
        condition &= c.model_name == model_name
    if model_version is not None:
        condition &= c.model_version == str(model_version)
    query = select(pa_table).where(condition).order_by(c.response_id, c.model_name, c.model_version)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).fetchall()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot load persona assignments of {month}: {exc}") from exc
    return pd.DataFrame(rows, columns=[col.name for col in pa_table.columns])
