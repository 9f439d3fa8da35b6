"""Survey responses: validated, transactional, idempotent ingest of whole deliveries.

A delivery (one or more files, or a frame) is one transaction: every input is read and
validated, then written, inside it, so any failure leaves nothing behind. Per input:

- the same content for the same month (sha256 of the file bytes, or of the frame's
  values, plus the month) is a no-op the second time (``already_ingested``);
- rows whose respondent is stored in the month with the same answers are skipped and
  counted; with *different* answers the delivery fails (`ConflictError`) unless
  ``replace`` is asked for, which supersedes the month's stored rows
  (`survey_replace`: labels dropped, monitoring runs marked stale, an audit row);
  replacing with the rows already stored changes nothing (``unchanged``);
- with a `BadRowLimit`, up to that many invalid rows are set aside into `survey_rejects`
  instead of failing the input (the default is strict: none).

Reading files (`persona.survey_file`) and validation + hashes (`persona.survey_input`)
touch no database; the writers are in `survey_write` (PostgreSQL binary COPY, SQLite
``executemany``), all on the delivery's one connection. Reads are in `survey_queries`.

Row numbers in errors: CSV files report file line numbers (line 1 is the header); Parquet
files report 1-based row numbers; DataFrames report 0-based positions. The error summary
says which.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import DataValidationError, IngestError, Issue, PersonaError, StoreError
from persona.features import DEFAULT_BOUNDS, Bounds
from persona.months import Month
from persona.store import survey_write
from persona.store.engine import utcnow
from persona.store.schema import ingest_batches, survey_rejects, survey_responses
from persona.store.survey_replace import record_replacement, supersede
from persona.store.survey_write import SurveyRows
from persona.store.survey_write import copy_postgres as _copy_postgres
from persona.store.survey_write import insert_sqlite as _insert_sqlite
from persona.survey_file import (
    estimated_rows,
    file_hash,
    iter_csv_chunks,
    iter_parquet_chunks,
    read_csv_file,
    read_parquet_file,
)
from persona.survey_input import (
    STRICT,
    BadRowLimit,
    IdOrder,
    Renumber,
    Validated,
    validate_and_hash,
    validate_rows,
)

_CONFLICT_IDS = 5  # respondent ids named in a conflict error
_RAW_CHARS = 2000  # of a rejected row's text kept in survey_rejects


class ConflictError(IngestError):
    """Rows of an input repeat stored respondents of the month with different answers."""


@dataclass
class DeliveryError(PersonaError):
    """An input of a delivery failed: nothing of the delivery was written.

    Attributes:
        index: The failing input's position in the delivery.
        cause: Its error.
        done: What the inputs before it would have written (rolled back).
    """

    index: int
    cause: PersonaError
    done: list[IngestResult] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.cause)


@dataclass(frozen=True)
class IngestOptions:
    """How a delivery is ingested.

    Attributes:
        month: The month of every input (else its ``survey_month`` column).
        bounds: Allowed feature range.
        error_limit: How many bad rows to list at most.
        replace: Supersede the stored rows of the months delivered.
        bad_rows: Invalid rows an input may hold (rejected, not stored); default none.
        actor: Who ingests (recorded on replacements).
    """

    month: Month | None = None
    bounds: Bounds = DEFAULT_BOUNDS
    error_limit: int = 20
    replace: bool = False
    bad_rows: BadRowLimit = STRICT
    actor: str = "unknown"


@dataclass(frozen=True)
class IngestResult:
    """What one input of a delivery did.

    Attributes:
        source: File path or the caller's name for a frame.
        month: The survey month ingested.
        content_hash: sha256 of the content and month (the idempotence key).
        rows: Rows in the input.
        rows_new: Rows written now.
        rows_skipped: Rows stored before with the same answers (or the whole input when
            already ingested or unchanged).
        rows_rejected: Invalid rows set aside into ``survey_rejects``.
        status: ``added``, ``replaced``, ``unchanged`` (a replacement with the rows
            already stored) or ``already_ingested`` (the same content before).
        already_ingested: True when the same content was ingested before (nothing done).
        batch_id: The ingest batch written (or the earlier one; None when unchanged).
        rows_replaced: Stored rows of the month superseded (``replaced`` only).
        seconds: Wall time of the input.
    """

    source: str
    month: Month
    content_hash: str
    rows: int
    rows_new: int
    rows_skipped: int
    rows_rejected: int
    status: str
    already_ingested: bool
    batch_id: str | None
    rows_replaced: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the keys of ``persona data ingest --json``)."""
        return {**asdict(self), "month": str(self.month)}


@dataclass(frozen=True)
class _Input:
    """An input read, before validation."""

    source: str
    frame: pd.DataFrame
    content: bytes | None
    numbering: tuple[str, str, Renumber]

    def raw_text(self) -> Callable[[int], str]:
        """A row's text as delivered, by position: the CSV line; else the cells as JSON."""
        if self.content is None or not self.source.lower().endswith(".csv"):
            return _frame_raw(self.frame)
        content, renumber = self.content, self.numbering[2]
        newlines = np.flatnonzero(np.frombuffer(content, dtype=np.uint8) == 0x0A)

        def raw(position: int) -> str:
            line = renumber(position)  # 1-based: line 1 is the header
            start = int(newlines[line - 2]) + 1 if line >= 2 else 0
            end = int(newlines[line - 1]) if line - 1 < len(newlines) else len(content)
            return content[start:end].rstrip(b"\r").decode("utf-8", "replace")[:_RAW_CHARS]

        return raw


@dataclass(frozen=True)
class _Chunked:
    """A large file, read chunk by chunk (`_write_chunked`)."""

    source: str
    path: Path
    chunks: Callable[[], Iterator[pd.DataFrame]]


def _existing_batch(conn: Connection, content_hash: str) -> str | None:
    query = select(ingest_batches.c.batch_id).where(ingest_batches.c.content_hash == content_hash)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def _month_has_rows(conn: Connection, month: Month) -> bool:
    query = select(survey_responses.c.response_id).where(survey_responses.c.survey_month == month)
    return conn.execute(query.limit(1)).first() is not None


def _reject_records(
    issues: Sequence[Issue], renumber: Renumber, raw: Callable[[int], str]
) -> list[dict[str, Any]]:
    """The ``survey_rejects`` values of rejected rows (0-based positions in `issues`)."""
    return [
        {
            "line": renumber(int(issue.row or 0)),
            "column_name": issue.column,
            "reason": issue.message,
            "raw": raw(int(issue.row or 0)),
        }
        for issue in issues
    ]


def _frame_raw(frame: pd.DataFrame) -> Callable[[int], str]:
    """A row of a frame as delivered: its cells as JSON text."""

    def raw(position: int) -> str:
        row = frame.iloc[position]
        return json.dumps({str(k): str(v) for k, v in row.items()})[:_RAW_CHARS]

    return raw


def _writer(conn: Connection) -> Callable[[Connection, SurveyRows, bool], int]:
    return _copy_postgres if conn.dialect.name == "postgresql" else _insert_sqlite


@dataclass(frozen=True)
class _Written:
    """An input's rows as loaded, before they are settled into the month.

    Attributes:
        source: The input's name.
        rows: Batch id, time and month (`SurveyRows`; ids/values of the last chunk).
        content_hash: The idempotence key.
        counts: Rows of the input, rows loaded, rows rejected.
        rejects: The ``survey_rejects`` values of the rejected rows.
        staged: Loaded into the staging table (else straight into the month).
        replacing: The input supersedes its month's stored rows.
    """

    source: str
    rows: SurveyRows
    content_hash: str
    counts: tuple[int, int, int]
    rejects: list[dict[str, Any]]
    staged: bool
    replacing: bool


def _result(
    done: _Written, status: str, new: int, batch: str | None, started: float, replaced: int = 0
) -> IngestResult:
    total, _kept, rejected = done.counts
    rejected = rejected if status in ("added", "replaced") else 0
    seconds = round(time.perf_counter() - started, 4)
    return IngestResult(
        done.source, done.rows.month, done.content_hash, total, new, total - new - rejected,
        rejected, status, status == "already_ingested", batch, replaced, seconds,
    )  # fmt: skip


def _settle(conn: Connection, done: _Written, actor: str, started: float) -> IngestResult:
    """Compare staged rows with the month, supersede or add them; batch, rejects, audit.

    Raises:
        ConflictError: Adding rows whose respondents are stored with other answers.
    """
    rows, old = done.rows, None
    if done.staged:
        if done.replacing:
            if survey_write.staged_equal_stored(conn, rows.month):
                survey_write.drop_staging(conn)
                return _result(done, "unchanged", 0, None, started)
            old = supersede(conn, rows.month)
        else:
            _refuse_conflicts(conn, rows.month, done.source)
        new = survey_write.insert_staged(conn, rows)
        survey_write.drop_staging(conn)
    else:
        new = done.counts[1]
    conn.execute(
        ingest_batches.insert().values(
            batch_id=rows.batch_id, source=done.source[-2000:], content_hash=done.content_hash,
            survey_month=rows.month, rows=done.counts[0], rows_new=new, ingested_at=rows.now,
        )
    )  # fmt: skip
    if done.rejects:
        common = {"batch_id": rows.batch_id, "survey_month": rows.month, "rejected_at": rows.now}
        source = {"source": done.source[-2000:]}
        conn.execute(survey_rejects.insert(), [{**r, **common, **source} for r in done.rejects])
    if old is None:
        return _result(done, "added", new, rows.batch_id, started)
    who = (done.source, actor, rows.now)
    record_replacement(conn, rows.month, old, (done.content_hash, new), who)
    return _result(done, "replaced", new, rows.batch_id, started, old.old_rows)


def _refuse_conflicts(conn: Connection, month: Month, source: str) -> None:
    count, first = survey_write.staged_conflicts(conn, month, _CONFLICT_IDS)
    if count:
        raise ConflictError(
            f"{source}: {count} row(s) repeat respondents stored for {month} with "
            f"different answers (first: {', '.join(map(repr, first))}); nothing written. "
            "A corrected delivery replaces the month: ingest it with --replace"
        )


def _claim(
    conn: Connection, month: Month, options: IngestOptions, state: tuple[set[Month], bool]
) -> tuple[bool, bool]:
    """``(staged, replacing)`` of an input of `month` (later inputs of a month add to it)."""
    seen, direct = state
    replacing = options.replace and month not in seen
    seen.add(month)
    staged = not direct or _month_has_rows(conn, month)
    if staged:
        survey_write.create_staging(conn)
    return staged, replacing


def _write(
    conn: Connection,
    item: _Input,
    valid: Validated,
    options: IngestOptions,
    state: tuple[set[Month], bool],
) -> IngestResult:
    """Write one validated input in the delivery's transaction.

    Args:
        conn: The delivery's connection.
        item: The input.
        valid: Its validated rows.
        options: The delivery's options.
        state: The months written by the delivery so far (updated), and whether a month
            without rows may be written straight into its table (else staged: the retry
            after a concurrent writer filled it).
    """
    started = time.perf_counter()
    rows = SurveyRows(valid.ids, valid.values, valid.month, str(uuid.uuid4()), utcnow())
    raw = item.raw_text() if valid.rejected else str
    rejects = _reject_records(valid.rejected, item.numbering[2], raw)
    counts = (valid.rows, len(valid.ids), len(valid.rejected))
    earlier = _existing_batch(conn, valid.content_hash)
    if earlier is not None:
        state[0].add(valid.month)
        done = _Written(item.source, rows, valid.content_hash, counts, [], False, False)
        return _result(done, "already_ingested", 0, earlier, started)
    staged, replacing = _claim(conn, valid.month, options, state)
    _writer(conn)(conn, rows, staged)
    done = _Written(item.source, rows, valid.content_hash, counts, rejects, staged, replacing)
    return _settle(conn, done, options.actor, started)


def _write_chunked(
    conn: Connection, item: _Chunked, options: IngestOptions, state: tuple[set[Month], bool]
) -> IngestResult:
    """Write a large file chunk by chunk in the delivery's transaction (memory: a chunk).

    Each chunk is validated and sent (COPY on PostgreSQL) before the next is read; the
    month and the content hash (a block-wise pass over the file) come with the first.
    Rows are numbered from 1 in errors. Respondent ids are proven distinct across chunks
    when the file is sorted (`survey_input.IdOrder`); otherwise the staged rows are checked
    in the database (an unsorted file into an empty month goes straight in: the unique
    constraint then stands guard, and a duplicate makes the delivery retry staged).
    """
    started, month, order = time.perf_counter(), options.month, IdOrder()
    batch_id, now = str(uuid.uuid4()), utcnow()
    total = kept = 0
    rejects: list[dict[str, Any]] = []
    plan: tuple[bool, bool, str] | None = None  # staged, replacing, content hash
    note = "rows are numbered from 1 (a large file is read in chunks)"
    for frame in item.chunks():
        renumber = _offset_renumber(total)
        allowed = max(options.bad_rows.allowed(total + len(frame)) - len(rejects), 0)
        numbering = (f"survey file {item.source}", note, renumber)
        limits = (options.bounds, options.error_limit)
        month, ids, values, rejected = validate_rows(frame, month, limits, numbering, allowed)
        if plan is None:
            content_hash = file_hash(item.path, month)
            earlier = _existing_batch(conn, content_hash)
            if earlier is not None:
                state[0].add(month)
                return _earlier(conn, item.source, month, content_hash, earlier, started)
            plan = (*_claim(conn, month, options, state), content_hash)
        rows = SurveyRows(ids, values, month, batch_id, now, offset=kept)
        _writer(conn)(conn, rows, plan[0])
        order.add(ids)
        rejects += _reject_records(rejected, renumber, _frame_raw(frame))
        total, kept = total + len(frame), kept + len(ids)
    if plan is None or month is None:
        raise IngestError(f"{item.source}: the file has a header but no data rows")
    staged, replacing, content_hash = plan
    if staged and not order.distinct:
        _refuse_duplicates(conn, item.source)
    counts = (total, kept, len(rejects))
    done = _Written(item.source, rows, content_hash, counts, rejects, staged, replacing)
    return _settle(conn, done, options.actor, started)


def _offset_renumber(offset: int) -> Renumber:
    return lambda position: offset + position + 1


def _refuse_duplicates(conn: Connection, source: str) -> None:
    found = survey_write.staged_duplicates(conn, _CONFLICT_IDS)
    if found:
        issues = [Issue(None, "respondent_id", f"duplicate respondent_id {i!r}") for i in found]
        raise DataValidationError(f"invalid survey file {source}", issues)


def _earlier(
    conn: Connection, source: str, month: Month, content_hash: str, batch: str, started: float
) -> IngestResult:
    """The result of a large file ingested before (its rows as the earlier batch counted)."""
    total = conn.execute(
        select(ingest_batches.c.rows).where(ingest_batches.c.batch_id == batch)
    ).scalar_one()
    seconds = round(time.perf_counter() - started, 4)
    return IngestResult(
        source, month, content_hash, int(total), 0, int(total), 0, "already_ingested", True,
        batch, 0, seconds,
    )  # fmt: skip


Reader = Callable[[], "_Input | _Chunked"]


def _deliver(
    engine: Engine, readers: Sequence[Reader], options: IngestOptions, direct: bool
) -> list[IngestResult]:
    """Read, validate and write every input in one transaction (see `ingest_delivery`)."""
    results: list[IngestResult] = []
    driver_error = getattr(engine.dialect.loaded_dbapi, "Error", SQLAlchemyError)
    driver_integrity = getattr(engine.dialect.loaded_dbapi, "IntegrityError", IntegrityError)
    state: tuple[set[Month], bool] = (set(), direct)
    limits = (options.bounds, options.error_limit)
    with engine.begin() as conn:
        for index, read in enumerate(readers):
            try:
                item = read()
                if isinstance(item, _Chunked):
                    results.append(_write_chunked(conn, item, options, state))
                    continue
                valid = validate_and_hash(
                    item.frame, options.month, item.content, limits, item.numbering,
                    options.bad_rows,
                )  # fmt: skip
                results.append(_write(conn, item, valid, options, state))
            except PersonaError as exc:
                raise DeliveryError(index, exc, results) from exc
            except (IntegrityError, driver_integrity):
                raise  # a concurrent writer: the caller retries the whole delivery
            except (SQLAlchemyError, driver_error) as exc:
                cause = StoreError(f"ingest failed, nothing written: {exc}")
                raise DeliveryError(index, cause, results) from exc
    return results


def ingest_delivery(
    engine: Engine, readers: Sequence[Reader], options: IngestOptions
) -> list[IngestResult]:
    """Ingest a delivery of inputs in one transaction: every input is written, or none.

    Args:
        engine: The store engine (`open_store`).
        readers: One callable per input returning it read (`file_reader`, `frame_reader`);
            called in order, inside the transaction (one input in memory at a time).
        options: Month, bounds, replace, bad-row limit, actor.

    Returns:
        One `IngestResult` per input, in order.

    Raises:
        DeliveryError: An input failed (its error is ``cause``); nothing was written.
    """
    integrity = getattr(engine.dialect.loaded_dbapi, "IntegrityError", IntegrityError)
    try:
        return _deliver(engine, readers, options, direct=True)
    except (IntegrityError, integrity):
        pass  # a month was filled (or the same content stored) concurrently
    try:
        return _deliver(engine, readers, options, direct=False)  # stage every input
    except (IntegrityError, integrity) as exc:
        raise DeliveryError(0, StoreError(f"ingest failed, nothing written: {exc}")) from exc


def frame_reader(frame: pd.DataFrame, source: str = "<frame>") -> Reader:
    """A delivery input of a DataFrame (rows are 0-based positions in errors)."""

    def read() -> _Input:
        if len(frame) == 0:
            raise IngestError(f"{source}: no rows to ingest")
        numbering = (f"survey data {source}", "rows are 0-based positions", int)
        return _Input(source, frame, None, numbering)

    return read


def file_reader(path: str | Path, error_limit: int = 20, chunk_rows: int | None = None) -> Reader:
    """A delivery input of a ``.csv`` or ``.parquet`` survey file.

    Args:
        path: The file.
        error_limit: How many bad lines to list at most.
        chunk_rows: A file of more rows is read `chunk_rows` at a time (`INGEST_CHUNK_ROWS`;
            None: always whole).
    """

    def read() -> _Input | _Chunked:
        file = Path(path)
        if not file.is_file():
            raise IngestError(f"survey file not found: {file}")
        suffix = file.suffix.lower()
        if chunk_rows and suffix in (".csv", ".parquet") and estimated_rows(file) > chunk_rows:
            chunked = iter_csv_chunks if suffix == ".csv" else iter_parquet_chunks
            return _Chunked(str(file), file, lambda: chunked(file, chunk_rows))
        if suffix == ".csv":
            frame, content, renumber = read_csv_file(file, error_limit)
            note = "rows are file line numbers; line 1 is the header"
        elif suffix == ".parquet":
            frame, content, renumber = read_parquet_file(file)
            note = "rows are numbered from 1"
        else:
            raise IngestError(
                f"{file}: unsupported file type {suffix!r}: expected .csv or .parquet"
            )
        return _Input(str(file), frame, content, (f"survey file {file}", note, renumber))

    return read


def _one(engine: Engine, reader: Reader, options: IngestOptions) -> IngestResult:
    try:
        return ingest_delivery(engine, [reader], options)[0]
    except DeliveryError as exc:
        raise exc.cause from exc.__cause__


def ingest_frame(
    engine: Engine,
    frame: pd.DataFrame,
    month: Month | None = None,
    source: str = "<frame>",
    *,
    bounds: Bounds = DEFAULT_BOUNDS,
    error_limit: int = 20,
    options: IngestOptions | None = None,
) -> IngestResult:
    """Validate and store a DataFrame of survey responses for one month.

    Args:
        engine: The store engine (`open_store`).
        frame: Columns ``respondent_id``, optional ``survey_month``, ``x1..x10``.
        month: The month; required unless the frame has a ``survey_month`` column, and
            must agree with it when both are given.
        source: Name recorded on the ingest batch.
        bounds: Allowed feature range.
        error_limit: How many bad rows to list at most.
        options: Replace / bad-row limit / actor (its month, bounds and limit are
            overridden by the arguments above).

    Returns:
        What was written (`IngestResult`).

    Raises:
        DataValidationError: Bad columns or rows (0-based row positions); nothing written.
        ConflictError: Stored respondents with other answers (without replace).
        IngestError: No month, or an empty frame.
        StoreError: The database write failed; nothing written.
    """
    base = options or IngestOptions()
    chosen = replace(base, month=month, bounds=bounds, error_limit=error_limit)
    return _one(engine, frame_reader(frame, source), chosen)


def ingest_file(
    engine: Engine,
    path: str | Path,
    *,
    month: Month | None = None,
    bounds: Bounds = DEFAULT_BOUNDS,
    error_limit: int = 20,
    options: IngestOptions | None = None,
) -> IngestResult:
    """Validate and store one survey file (``.csv`` or ``.parquet``) in one transaction.

    Args:
        engine: The store engine (`open_store`).
        path: The file; columns ``respondent_id``, optional ``survey_month``, ``x1..x10``.
        month: The month; required unless the file has a ``survey_month`` column, and must
            agree with it when both are given.
        bounds: Allowed feature range.
        error_limit: How many bad rows to list at most.
        options: As in `ingest_frame`.

    Returns:
        What was written; ``already_ingested`` when the same bytes were stored for the
        same month before.

    Raises:
        DataValidationError: Bad columns or rows: CSV rows are file line numbers (line 1
            is the header), Parquet rows are 1-based. Nothing is written.
        ConflictError: Stored respondents with other answers (without replace).
        IngestError: Missing/empty/unreadable file, no month, unknown file type.
        StoreError: The database write failed; nothing written.
    """
    base = options or IngestOptions()
    chosen = replace(base, month=month, bounds=bounds, error_limit=error_limit)
    return _one(engine, file_reader(path, error_limit), chosen)
