"""Reads of the survey store: months back as DataFrames, the month list, fingerprints.

On PostgreSQL (psycopg2) `load_months` reads with one binary ``COPY (SELECT ...) TO STDOUT``
parsed by numpy in place: every column is fixed width on the wire (the respondent id is
sent as UTF-8 bytes zero-padded to the longest id of the months, read in the same
snapshot), so the whole result is one structured-array view. Other engines go through
SQLAlchemy rows. Both return the same frame. `stream_month_features` (PostgreSQL +
psycopg2) reads only what labeling needs, response id and features, chunk by chunk as the
server sends them.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from persona.errors import NotIngestedError, StoreError
from persona.features import FEATURE_NAMES
from persona.months import Month, Window, month_range
from persona.store.copy_codec import read_tuples, tuple_dtype
from persona.store.copy_stream import copy_out_chunks
from persona.store.schema import ingest_batches, survey_rejects, survey_responses
from persona.survey_input import ID, MONTH

_LOAD_COLUMNS = ("response_id", ID, MONTH, *FEATURE_NAMES)
_DTYPES = {"response_id": "int64", ID: "object", MONTH: "object"}
_MONTH_BYTES = 7  # YYYY-MM
_FEATURE_ROW = tuple_dtype([("response_id", ">i8"), *[(name, ">f8") for name in FEATURE_NAMES]])


def load_months(engine: Engine, months: Iterable[Month]) -> pd.DataFrame:
    """Load the responses of several months, ordered by month then response id.

    Args:
        engine: The store engine.
        months: The months (a `Window`, or any months; repeats are read once).

    Returns:
        Columns ``response_id, respondent_id, survey_month, x1..x10`` (empty if none).

    Raises:
        StoreError: The store cannot be read.
    """
    wanted = sorted(set(months))
    try:
        if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2":
            snapshot = engine.connect().execution_options(isolation_level="REPEATABLE READ")
            with snapshot as conn, conn.begin():  # one snapshot: the id width and the rows
                return _copy_months(conn, wanted)
        frame = _select_months(engine, wanted)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read survey months {wanted}: {exc}") from exc
    return frame.astype({**_DTYPES, **dict.fromkeys(FEATURE_NAMES, "float64")})


def _select_months(engine: Engine, wanted: Sequence[str]) -> pd.DataFrame:
    """The portable read: SQLAlchemy rows into a DataFrame."""
    columns = [survey_responses.c[name] for name in _LOAD_COLUMNS]
    query = (
        select(*columns)
        .where(survey_responses.c[MONTH].in_(wanted))
        .order_by(survey_responses.c[MONTH], survey_responses.c.response_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).fetchall()
    return pd.DataFrame(rows, columns=list(_LOAD_COLUMNS))


def _copy_months(conn: Connection, wanted: Sequence[str]) -> pd.DataFrame:
    """Read the months with a binary COPY into numpy columns (PostgreSQL + psycopg2)."""
    import psycopg2

    c = survey_responses.c
    width, count = conn.execute(
        select(
            func.coalesce(func.max(func.octet_length(func.convert_to(c[ID], "UTF8"))), 0),
            func.count(),
        ).where(c[MONTH].in_(wanted))
    ).one()
    width = max(int(width), 1)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        # The statement is built from fixed names; the months go in as bound parameters.
        statement = cursor.mogrify(
            f"COPY (SELECT response_id, {MONTH}, {', '.join(FEATURE_NAMES)}, "
            f"decode(rpad(encode(convert_to({ID}, 'UTF8'), 'hex'), %s, '0'), 'hex') "
            f"FROM {survey_responses.name} WHERE {MONTH} IN %s) TO STDOUT WITH (FORMAT binary)",
            (2 * width, tuple(wanted)),
        ).decode()
        sink = io.BytesIO()
        cursor.copy_expert(statement, sink, size=1 << 20)
    except psycopg2.Error as exc:  # the raw cursor's error, as SQLAlchemy would raise it
        raise DBAPIError.instance("COPY survey_responses", None, exc, psycopg2.Error) from exc
    finally:
        cursor.close()
    return _parse_rows(sink.getbuffer(), width, int(count), len(wanted))


def _row_dtype(width: int) -> np.dtype:
    features = [(name, ">f8") for name in FEATURE_NAMES]
    fields = [("response_id", ">i8"), (MONTH, f"S{_MONTH_BYTES}"), *features, (ID, f"S{width}")]
    return tuple_dtype(fields)


def _parse_rows(payload: memoryview, width: int, count: int, months: int) -> pd.DataFrame:
    """The frame of a binary COPY payload whose rows are all `_row_dtype(width)`."""
    rec = read_tuples(payload, _row_dtype(width), count)
    ids = rec["response_id"].astype(np.int64)
    if months == 1:  # the query selected one month: nothing to decode per row
        names, month_code = rec[MONTH][:1], np.zeros(count, dtype=np.intp)
    else:
        names, month_code = np.unique(rec[MONTH], return_inverse=True)
    step, id_step = np.diff(month_code), np.diff(ids)
    ordered = bool(((step > 0) | ((step == 0) & (id_step > 0))).all())
    order: Any = slice(None) if ordered else np.lexsort((ids, month_code))
    raw_ids = rec[ID][order]
    try:
        respondent = raw_ids.astype(f"U{width}").astype(object)  # ASCII (the usual case)
    except UnicodeDecodeError:
        respondent = np.array([v.decode("utf-8") for v in raw_ids.tolist()], dtype=object)
    month_names = np.array([m.decode("ascii") for m in names.tolist()], dtype=object)
    features = np.empty((len(FEATURE_NAMES), count), dtype=np.float64)
    for column, name in zip(features, FEATURE_NAMES, strict=True):
        column[:] = rec[name][order]
    frame = pd.DataFrame(features.T, columns=list(FEATURE_NAMES), copy=False)
    frame.insert(0, MONTH, month_names[month_code[order]])
    frame.insert(0, ID, respondent)
    frame.insert(0, "response_id", ids[order])
    return frame


def streams(engine: Engine) -> bool:
    """Whether `stream_month_features` works on this engine (PostgreSQL + psycopg2)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"


def stream_month_features(
    engine: Engine,
    month: Month,
    rows: int,
    handle: Callable[[np.ndarray, np.ndarray], None],
) -> int:
    """Read a month's response ids and features chunk by chunk, as the server sends them.

    One binary ``COPY (SELECT response_id, x1..x10 ...) TO STDOUT`` (one snapshot) on a
    connection of its own, so the caller may write on another one meanwhile. Rows come in
    the table's physical order (ingest order), not sorted.

    Args:
        engine: A PostgreSQL + psycopg2 store engine (`streams`).
        month: The month.
        rows: Rows per chunk (the last one may be shorter).
        handle: Called in this thread as ``handle(ids, features)`` per chunk: int64 response
            ids and a C-contiguous float64 array (rows, 10) in `FEATURE_NAMES` order.

    Returns:
        The rows read (0 for a month without responses).

    Raises:
        StoreError: The store cannot be read. An exception raised by `handle` propagates
            as it is (the read stops there).
    """
    raised: list[BaseException] = []

    def split(records: np.ndarray) -> None:
        features = np.empty((len(records), len(FEATURE_NAMES)), dtype=np.float64)
        for column, name in enumerate(FEATURE_NAMES):
            features[:, column] = records[name]
        try:
            handle(records["response_id"].astype(np.int64), features)
        except BaseException as exc:
            raised.append(exc)
            raise

    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            statement = cursor.mogrify(  # fixed names; the month goes in as a parameter
                f"COPY (SELECT response_id, {', '.join(FEATURE_NAMES)} "
                f"FROM {survey_responses.name} WHERE {MONTH} = %s) TO STDOUT WITH (FORMAT binary)",
                (str(month),),
            ).decode()
            cursor.close()
            count = copy_out_chunks(raw.dbapi_connection, statement, _FEATURE_ROW, rows, split)
            raw.rollback()
        except BaseException:
            raw.invalidate()  # it may be in the middle of the COPY
            raise
        finally:
            raw.close()
    except SQLAlchemyError as exc:
        if raised and exc is raised[-1]:
            raise
        raise StoreError(f"cannot read survey month {month}: {exc}") from exc
    return count


def has_month(engine: Engine, month: Month) -> bool:
    """Whether the store holds any response of the month (one index probe).

    Raises:
        StoreError: The store cannot be read.
    """
    query = select(survey_responses.c.response_id).where(survey_responses.c[MONTH] == month)
    try:
        with engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the survey responses of {month}: {exc}") from exc


def load_month(engine: Engine, month: Month) -> pd.DataFrame:
    """Load one month's responses ordered by response id (file order).

    Args:
        engine: The store engine.
        month: The month.

    Returns:
        Columns ``response_id, respondent_id, survey_month, x1..x10`` (empty if none).
    """
    return load_months(engine, [month])


def count_month(engine: Engine, month: Month) -> int:
    """Count one month's stored responses (one index-backed query).

    Args:
        engine: The store engine.
        month: The month.

    Raises:
        StoreError: The store cannot be read.
    """
    return _count_month(engine, survey_responses, month, "survey responses")


def count_rejects(engine: Engine, month: Month) -> int:
    """Count the rows of a month its ingest set aside into ``survey_rejects``.

    Raises:
        StoreError: The store cannot be read.
    """
    return _count_month(engine, survey_rejects, month, "rejected rows")


def _count_month(engine: Engine, table: Table, month: Month, what: str) -> int:
    """Count the rows of `table` in `month` (`what` names them in the error)."""
    query = select(func.count()).where(table.c[MONTH] == month)
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot count the {what} of {month}: {exc}") from exc


@dataclass(frozen=True)
class StoredMonth:
    """A month held by the store.

    Attributes:
        month: The month.
        rows: Its stored responses.
    """

    month: Month
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """``{"month": "2025-01", "rows": 500}`` (JSON-ready)."""
        return {"month": str(self.month), "rows": self.rows}


def list_months(engine: Engine) -> list[StoredMonth]:
    """List the stored months with their row counts, oldest first.

    Returns:
        One `StoredMonth` per month (the month text read back is checked: a file-like edge).

    Raises:
        StoreError: The store cannot be read.
    """
    month = survey_responses.c[MONTH]
    query = select(month, func.count()).group_by(month).order_by(month)
    try:
        with engine.connect() as conn:
            return [StoredMonth(Month(m), int(n)) for m, n in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot list survey months: {exc}") from exc


def month_fingerprint(engine: Engine, months: Iterable[Month]) -> str:
    """A sha256 over the months' ingest batches (content hash and rows written).

    Batches that wrote no new rows (a re-ingest of the same data in another format) do
    not count, so the same stored data gives the same value.

    Args:
        engine: The store engine.
        months: The months (order and repeats do not matter).

    Returns:
        Hex digest.
    """
    wanted = sorted(set(months))
    batches = ingest_batches.c
    query = (
        select(batches.survey_month, batches.content_hash, batches.rows_new)
        .where(batches.survey_month.in_(wanted), batches.rows_new > 0)
        .order_by(batches.survey_month, batches.content_hash)
    )
    digest = hashlib.sha256(("months:" + ",".join(wanted) + "\n").encode())
    with engine.connect() as conn:
        for month, content_hash, rows in conn.execute(query):
            digest.update(f"{month}:{content_hash}:{rows}\n".encode())
    return digest.hexdigest()


def stored_window(engine: Engine, last: Month, size: int, purpose: str = "training") -> Window:
    """The ingested months of the `size`-month window ending at `last`, oldest first.

    Args:
        engine: The store engine.
        last: The window's last month; it must be ingested.
        size: Months in the window (at least 1); months without rows are left out.
        purpose: What the window is for (said in the error).

    Raises:
        NotIngestedError: `last` itself holds no rows.
        StoreError: The store cannot be read.
    """
    wanted = set(month_range(last.add(1 - max(size, 1)), last))
    stored = [row.month for row in list_months(engine) if row.month in wanted]
    if last not in stored:
        raise NotIngestedError([last], purpose)
    return Window.of(stored)


def earliest_month(engine: Engine, purpose: str = "") -> Month:
    """The oldest ingested month.

    Raises:
        NotIngestedError: No month is ingested.
        StoreError: The store cannot be read.
    """
    months = list_months(engine)
    if not months:
        raise NotIngestedError([], purpose)
    return months[0].month


def feature_rows(engine: Engine, months: Iterable[Month], purpose: str = "") -> np.ndarray:
    """The feature columns of some months' rows, shape (rows, 10), float64.

    Args:
        engine: The store engine.
        months: The months (month then response-id order, as `load_months`).
        purpose: What the rows are for (said in the error).

    Raises:
        NotIngestedError: The months hold no rows.
        StoreError: The store cannot be read.
    """
    wanted = sorted(set(months))
    frame = load_months(engine, wanted)
    if frame.empty:
        raise NotIngestedError(tuple(wanted), purpose)
    return frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
