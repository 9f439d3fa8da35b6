"""`persona_assignments`: append-only persona labels with lineage (model name + version).

A row is unique per (month, model name, model version, response) — the primary key; a
response has one month, so that is one label per response and model version: writing the
same month with the same model again inserts nothing. PostgreSQL writes one binary COPY
built by numpy: the numeric columns (response id, distance, margin, time) are one
fixed-width record per row and the text columns (month, model name, version, persona
id/name, nearest id) come from a small table of pre-encoded byte strings, one per (label,
nearest) combination. The ids the (month, model, version) already has are read first
(nothing to read on a first run; a partial earlier run's otherwise) and the other rows are
COPYed straight into `persona_assignments`. A straight COPY that meets an existing row
after all (a concurrent run, a repeated id) is rolled back to a savepoint and redone
through a temporary table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (no conflict
target: it holds with the key of any schema version).

`label_month_copy` (PostgreSQL + psycopg2) labels a month as it is read: a second
connection streams the month's ids and features, each chunk is labelled and its tuples go
to a COPY running on a background thread in the writing transaction (`store.copy_stream`),
so reading, labelling and inserting overlap. Its ids come from `survey_responses` of that
month, so they need no check. `write_assignments` takes any ids: the table has no foreign
key (see `store.schema`), so in the same transaction one count over a primary-key range
(ids that are a gap-free range of responses) or else one anti-join proves every id is a
survey response of that month; any other id rolls the whole write back. SQLite: an
``executemany`` insert with ``ON CONFLICT DO NOTHING``. SQL text is built only from the
schema objects' names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
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
from persona.store import survey_queries
from persona.store.assignment_copy import (
    COPY_COLUMNS,
    LabelEncoder,
    copy_into,
    copy_stream,
    label_codes,
    rows_of,
)
from persona.store.copy_codec import tuple_dtype
from persona.store.copy_stream import CopySender, copy_out_chunks
from persona.store.engine import utcnow
from persona.store.schema import persona_assignments as pa_table
from persona.store.schema import survey_responses

_SQLITE_CHUNK = 20_000
# Rows per chunk of a streamed month: `PersonaModel.predict`'s own chunk, so each row's labels
# are computed exactly as in one call on the whole month.
_STREAM_ROWS = 1 << 16
_SEND = 1 << 22  # bytes per send of the streamed COPY
_UNIQUE_VIOLATION = "23505"
_ID = tuple_dtype([("id", ">i8")])
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
                encoding = _encoding(conn)

                def fill(table: Table, labelled: np.ndarray) -> tuple[int, int]:
                    new = _unlabelled(ids, labelled)
                    if new is None:
                        part, labels = ids, prediction
                    else:
                        part, labels = ids[new], rows_of(prediction, new)
                    copy_into(conn, table, copy_stream(part, labels, context, encoding))
                    return len(ids), len(part)

                written = _copy_postgres(conn, context, fill)[1]
            else:
                written = _insert_sqlite(conn, ids, prediction, context)
            unknown = None
            if not _gap_free_responses(conn, ids, month):
                unknown = first_unknown_response(conn, month, model_name, str(model_version))
            if unknown is not None:  # raising rolls the whole write back
                raise StoreError(
                    f"cannot write persona assignments of {month}: response id {unknown} is "
                    f"not a survey response of {month} (nothing written)"
                )
            return written
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot write persona assignments of {month}: {exc}") from exc


def _gap_free_responses(conn: Connection, ids: np.ndarray, month: Month) -> bool:
    """Whether the ids are exactly a range of existing responses of the month.

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
    query = select(func.count()).where(r.response_id.between(low, high), r.survey_month == month)
    return int(conn.execute(query).scalar_one()) == high - low + 1


def first_unknown_response(
    conn: Connection, month: Month, model_name: str, model_version: str
) -> int | None:
    """The smallest response id a model version labelled in a month that is not a response of it.

    One anti-join (the table has no foreign key; see `store.schema`). Called inside the
    writing transaction, so a hit rolls the write back.

    Returns:
        The id, or None when every label refers to a survey response of that month.
    """
    a, r = pa_table.c, survey_responses.c
    query = select(func.min(a.response_id)).where(
        _where(month, model_name, model_version),
        ~exists().where(r.response_id == a.response_id, r.survey_month == a.survey_month),
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def _encoding(conn: Connection) -> str:
    """The Python codec of the connection's client encoding (psycopg2)."""
    import psycopg2.extensions

    dbapi: Any = conn.connection.dbapi_connection
    return str(psycopg2.extensions.encodings[dbapi.encoding])


Fill = Callable[[Table, np.ndarray], tuple[int, int]]


def _copy_postgres(conn: Connection, context: tuple[Any, ...], fill: Fill) -> tuple[int, int]:
    """Write labels with `fill`: one COPY into the table given; returns (rows, written).

    ``fill(table, labelled)`` copies the rows whose response id is not in `labelled` (the
    ids the model version already labelled in the month) and returns (rows, rows copied).
    First straight into `persona_assignments`, in a savepoint; a row that is there after
    all (a concurrent run, a repeated id) sends the whole write through the staging table
    and ``INSERT ... ON CONFLICT DO NOTHING``.
    """
    try:
        with conn.begin_nested():
            return fill(pa_table, labelled_ids(conn, *context[:3]))
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) != _UNIQUE_VIOLATION:
            raise
    _staging.create(conn, checkfirst=False)
    rows = fill(_staging, np.empty(0, dtype=np.int64))[0]
    insert = pg_insert(pa_table).from_select(list(COPY_COLUMNS), select(_staging))
    result = conn.execute(insert.on_conflict_do_nothing())
    return rows, int(result.rowcount)


def _unlabelled(ids: np.ndarray, labelled: np.ndarray) -> np.ndarray | None:
    """The positions of the ids not in `labelled` (None: all of them)."""
    if not len(labelled):
        return None
    return np.flatnonzero(~np.isin(ids, labelled))


def labelled_ids(conn: Connection, month: Month, model_name: str, model_version: str) -> np.ndarray:
    """The response ids a model version labelled in a month (PostgreSQL + psycopg2).

    One binary COPY over the primary key's (month, model, version) range; nothing to read
    on a first run. Inside the writing transaction it sees what was committed before.
    """
    a = pa_table.c
    found: list[np.ndarray] = []
    dbapi: Any = conn.connection.dbapi_connection
    with dbapi.cursor() as cursor:
        statement = cursor.mogrify(  # fixed names; the values go in as parameters
            f"COPY (SELECT {a.response_id.name} FROM {pa_table.name} WHERE "
            f"{a.survey_month.name} = %s AND {a.model_name.name} = %s AND "
            f"{a.model_version.name} = %s) TO STDOUT WITH (FORMAT binary)",
            (str(month), model_name, str(model_version)),
        ).decode()
    copy_out_chunks(dbapi, statement, _ID, 1 << 20, lambda rec: found.append(rec["id"]))
    return np.concatenate(found).astype(np.int64) if found else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class MonthLabels:
    """What `label_month_copy` did.

    Attributes:
        rows: Responses of the month, read and labelled.
        written: Labels newly written (the others were there already).
        persona_counts: Labels of the rows read per persona id, sorted by id.
    """

    rows: int
    written: int
    persona_counts: dict[str, int]


Mark = Callable[[str], object]
"""Called with a stage's name as each stage of `label_month_copy` ends (e.g. a clock)."""


def _no_mark(stage: str) -> None:
    """The default `Mark`: nothing is timed."""


def label_month_copy(
    engine: Engine,
    month: Month,
    model_name: str,
    model_version: str,
    predict: Callable[[np.ndarray], Prediction],
    mark: Mark = _no_mark,
) -> MonthLabels:
    """Label every response of a month as it is read; write the labels in one transaction.

    PostgreSQL + psycopg2 only (`survey_queries.streams`). The month is read with
    `survey_queries.stream_month_features` (a connection of its own); each chunk is
    labelled with `predict` (every row, also on a resume) and the tuples of the rows not
    labelled yet are sent to a `CopySender` writing into `persona_assignments` (or the
    staging table, as `write_assignments`). A failure anywhere rolls the whole write back.

    Args:
        engine: The store engine.
        month: The month.
        model_name: Registered model name (lineage).
        model_version: Registered model version (lineage).
        predict: The model's ``predict`` (float64 features (rows, 10) to `Prediction`).
        mark: Called on the labelling thread as each stage ends: ``start`` (the COPY is
            open), then per chunk ``read`` (waiting for the month's rows), ``predict``,
            ``encode``, ``send`` (waiting for PostgreSQL to take the tuples), a last
            ``read``, and ``finish`` (end of the COPY, the ``ON CONFLICT`` insert when
            there is one, commit). The benchmark times the stages with it.

    Returns:
        Rows read, labels written and persona counts (`MonthLabels`).

    Raises:
        StoreError: The engine is not PostgreSQL + psycopg2, or the read or the write
            failed (nothing is written then). An error of `predict` propagates as it is
            (nothing is written either).
    """
    if not survey_queries.streams(engine):
        raise StoreError(
            f"labeling a month as it is read needs PostgreSQL (psycopg2): {engine.url!r}"
        )
    context = (month, model_name, str(model_version), utcnow())
    counts: dict[str, int] = {}

    def fill(conn: Connection, table: Table, labelled: np.ndarray) -> tuple[int, int]:
        encoder = LabelEncoder(context, _encoding(conn))
        counts.clear()
        copied = 0
        with CopySender(conn, table, COPY_COLUMNS, _SEND) as sender:
            mark("start")

            def handle(ids: np.ndarray, features: np.ndarray) -> None:
                nonlocal copied
                mark("read")
                prediction = predict(features)  # every row: the bits do not depend on which
                mark("predict")
                tuples, n = _encode(encoder, ids, prediction, labelled, counts)
                copied += n
                mark("encode")
                sender.send(tuples)
                mark("send")

            rows = survey_queries.stream_month_features(engine, month, _STREAM_ROWS, handle)
            mark("read")
        return rows, copied

    try:
        with engine.begin() as conn:
            rows, written = _copy_postgres(conn, context, lambda t, done: fill(conn, t, done))
        mark("finish")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot write persona assignments of {month}: {exc}") from exc
    return MonthLabels(rows, written, dict(sorted(counts.items())))


def _encode(
    encoder: LabelEncoder,
    ids: np.ndarray,
    prediction: Prediction,
    labelled: np.ndarray,
    counts: dict[str, int],
) -> tuple[bytes, int]:
    """A chunk's COPY tuples (rows not labelled yet) and their count; tallies the labels."""
    codes = label_codes(prediction)
    _tally(counts, prediction, codes)
    new = _unlabelled(ids, labelled)
    if new is None:
        return encoder.tuples(ids, prediction, codes), len(ids)
    return encoder.tuples(ids[new], rows_of(prediction, new)), len(new)


def _tally(
    counts: dict[str, int], prediction: Prediction, codes: tuple[np.ndarray, np.ndarray]
) -> None:
    code, first = codes
    for row, n in zip(
        first.tolist(), np.bincount(code, minlength=len(first)).tolist(), strict=True
    ):
        pid = str(prediction.persona_id[row])
        counts[pid] = counts.get(pid, 0) + n


def _insert_sqlite(
    conn: Connection, ids: np.ndarray, prediction: Prediction, context: tuple[Any, ...]
) -> int:
    month, model_name, model_version, now = context
    before = _count(conn, month, model_name, model_version)
    insert = sqlite_insert(pa_table).on_conflict_do_nothing()
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
