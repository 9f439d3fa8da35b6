"""`persona_assignments`: append-only persona labels with lineage (model name + version).

A row is unique per (response, model name, model version): writing the same month with the
same model again inserts nothing. PostgreSQL writes one binary COPY built by numpy: the
numeric columns (response id, distance, margin, time) are one fixed-width record per row
and the text columns (month, model name, version, persona id/name, nearest id) come from
a small table of pre-encoded byte strings, one per (label, nearest) combination. When the
(month, model, version) has no rows yet (one count on the month index) the COPY goes
straight into `persona_assignments`; otherwise (a partial earlier run) into a temporary
table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. A straight COPY that meets an
existing (response, model, version) row (a concurrent run, a repeated id) is rolled back
to a savepoint and redone the second way. The table has no foreign key (see `store.schema`):
in the same transaction, one count over a primary-key range (ids that are a gap-free range
of responses) or else one anti-join proves every id is a survey response; an unknown id
rolls the whole write back. SQLite: an ``executemany`` insert with
``ON CONFLICT DO NOTHING``. SQL text is built only from the schema objects' names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    MetaData,
    Table,
    Text,
    exists,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import StoreError
from persona.model import Prediction
from persona.months import Month
from persona.store.assignment_copy import COPY_COLUMNS, copy_into, copy_stream
from persona.store.engine import utcnow
from persona.store.schema import persona_assignments as pa_table
from persona.store.schema import survey_responses

_UNIQUE = ["response_id", "model_name", "model_version"]
_SQLITE_CHUNK = 20_000
_UNIQUE_VIOLATION = "23505"
_staging = Table(
    "persona_assign_staging",
    MetaData(),
    Column("response_id", BigInteger, nullable=False),
    Column("distance", Float(precision=53), nullable=False),
    Column("margin", Float(precision=53), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    *[Column(name, Text, nullable=False) for name in COPY_COLUMNS[4:]],
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def write_assignments(
    engine: Engine,
    response_ids: Sequence[int] | np.ndarray,
    month: Month,
    model_name: str,
    model_version: str,
    prediction: Prediction,
) -> int:
    """Append the labels of a batch of responses; existing (response, model, version) rows stay.

    Args:
        engine: The store engine.
        response_ids: Response id of each labelled row, in prediction order.
        month: The month of the responses.
        model_name: Registered model name (lineage).
        model_version: Registered model version (lineage).
        prediction: The labels (persona id/name, nearest id, distance, margin).

    Returns:
        Rows newly written.

    Raises:
        StoreError: The write failed (nothing is written then), e.g. an unknown response id.
    """
    ids = np.asarray(response_ids, dtype=np.int64)
    if len(ids) != len(prediction):
        raise StoreError(f"{len(ids)} response ids for {len(prediction)} predictions")
    if not len(ids):
        return 0
    context = (month, model_name, str(model_version), utcnow())
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                written = _copy_postgres(conn, ids, prediction, context)
            else:
                written = _insert_sqlite(conn, ids, prediction, context)
            unknown = None
            if not _gap_free_responses(conn, ids):
                unknown = first_unknown_response(conn, month, model_name, str(model_version))
            if unknown is not None:  # raising rolls the whole write back
                raise StoreError(
                    f"cannot write persona assignments of {month}: response id {unknown} is "
                    "not a survey response (nothing written)"
                )
            return written
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot write persona assignments of {month}: {exc}") from exc


def _gap_free_responses(conn: Connection, ids: np.ndarray) -> bool:
    """Whether the ids are exactly a range of existing responses (then all are known).

    The common case (a month's responses, ingested together) costs one count over a range
    of the primary key instead of the anti-join of `first_unknown_response`.
    """
    if len(ids) > 1 and bool((np.diff(ids) == 1).all()):  # sorted and consecutive
        low, high = int(ids[0]), int(ids[-1])
    else:
        unique = np.unique(ids)
        low, high = int(unique[0]), int(unique[-1])
        if high - low + 1 != len(unique):
            return False
    r = survey_responses.c
    query = select(func.count()).where(r.response_id.between(low, high))
    return int(conn.execute(query).scalar_one()) == high - low + 1


def first_unknown_response(
    conn: Connection, month: Month, model_name: str, model_version: str
) -> int | None:
    """The smallest response id a model version labelled in a month that is not a response.

    One anti-join (the table has no foreign key; see `store.schema`). Called inside the
    writing transaction, so a hit rolls the write back.

    Returns:
        The id, or None when every label refers to a survey response.
    """
    a, r = pa_table.c, survey_responses.c
    query = select(func.min(a.response_id)).where(
        _where(month, model_name, model_version),
        ~exists().where(r.response_id == a.response_id),
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def _copy_postgres(
    conn: Connection, ids: np.ndarray, prediction: Prediction, context: tuple[Any, ...]
) -> int:
    import psycopg2.extensions

    dbapi: Any = conn.connection.dbapi_connection
    encoding = psycopg2.extensions.encodings[dbapi.encoding]
    if not _count(conn, *context[:3]):  # nothing of this model for the month: COPY straight in
        try:
            with conn.begin_nested():
                copy_into(conn, pa_table, copy_stream(ids, prediction, context, encoding))
            return len(ids)
        except IntegrityError as exc:
            if getattr(exc.orig, "pgcode", None) != _UNIQUE_VIOLATION:
                raise
    _staging.create(conn, checkfirst=False)
    copy_into(conn, _staging, copy_stream(ids, prediction, context, encoding))
    insert = pg_insert(pa_table).from_select(list(COPY_COLUMNS), select(_staging))
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


def _where(month: Month, model_name: str, model_version: str) -> Any:
    c = pa_table.c
    return (
        (c.survey_month == month)
        & (c.model_name == model_name)
        & (c.model_version == str(model_version))
    )


def _count(conn: Connection, month: Month, model_name: str, model_version: str) -> int:
    query = (
        select(func.count()).select_from(pa_table).where(_where(month, model_name, model_version))
    )
    return int(conn.execute(query).scalar_one())


def count_assignments(engine: Engine, month: Month, model_name: str, model_version: str) -> int:
    """Count the labels a model version wrote for a month.

    Args:
        engine: The store engine.
        month: The month.
        model_name: Registered model name.
        model_version: Registered model version.
    """
    try:
        with engine.connect() as conn:
            return _count(conn, month, model_name, model_version)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot count persona assignments of {month}: {exc}") from exc


def persona_mix(
    engine: Engine, month: Month, model_name: str, model_version: str
) -> dict[str, int]:
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
    engine: Engine, month: Month, model_name: str | None = None, model_version: str | None = None
) -> pd.DataFrame:
    """Load a month's labels, optionally of one model (and version), by response id.

    Args:
        engine: The store engine.
        month: The month.
        model_name: Only this model (all models when None).
        model_version: Only this version (all versions when None).

    Returns:
        Every column of `persona_assignments` (empty frame when there are none).
    """
    c = pa_table.c
    condition = c.survey_month == month
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
