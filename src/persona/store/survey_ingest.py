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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import IngestError, PersonaError, StoreError
from persona.features import DEFAULT_BOUNDS, Bounds
from persona.months import Month
from persona.store import survey_write
from persona.store.engine import utcnow
from persona.store.schema import ingest_batches, survey_rejects, survey_responses
from persona.store.survey_replace import Superseded, record_replacement, supersede
from persona.store.survey_write import SurveyRows
from persona.store.survey_write import copy_postgres as _copy_postgres
from persona.store.survey_write import insert_sqlite as _insert_sqlite
from persona.survey_file import read_csv_file, read_parquet_file
from persona.survey_input import STRICT, BadRowLimit, Renumber, Validated, validate_and_hash

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

    def raw(self, position: int) -> str:
        """The text of a row as delivered (the CSV line; else the values as JSON)."""
        if self.content is not None and self.source.lower().endswith(".csv"):
            line = self.numbering[2](position)
            text = self.content.split(b"\n", line)[line - 1].rstrip(b"\r")
            return text.decode("utf-8", errors="replace")[:_RAW_CHARS]
        row = self.frame.iloc[position]
        return json.dumps({str(k): str(v) for k, v in row.items()})[:_RAW_CHARS]


def _existing_batch(conn: Connection, content_hash: str) -> str | None:
    query = select(ingest_batches.c.batch_id).where(ingest_batches.c.content_hash == content_hash)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def _month_has_rows(conn: Connection, month: Month) -> bool:
    query = select(survey_responses.c.response_id).where(survey_responses.c.survey_month == month)
    return conn.execute(query.limit(1)).first() is not None


def _write_rejects(conn: Connection, item: _Input, valid: Validated, rows: SurveyRows) -> None:
    renumber = item.numbering[2]
    records = [
        {
            "batch_id": rows.batch_id,
            "survey_month": rows.month,
            "source": item.source[-2000:],
            "line": renumber(int(issue.row or 0)),
            "column_name": issue.column,
            "reason": issue.message,
            "raw": item.raw(int(issue.row or 0)),
            "rejected_at": rows.now,
        }
        for issue in valid.rejected
    ]
    if records:
        conn.execute(survey_rejects.insert(), records)


def _staged(
    conn: Connection, rows: SurveyRows, replacing: bool, source: str
) -> tuple[bool, Superseded | None]:
    """Stage the rows of a month that has some and compare them with the stored ones.

    Returns:
        ``(unchanged, superseded)``: unchanged when replacing with exactly the stored rows
        (staging dropped, nothing to do); what a replacement superseded, else None.

    Raises:
        ConflictError: Adding rows whose respondents are stored with other answers.
    """
    survey_write.create_staging(conn)
    _writer(conn)(conn, rows, True)
    if replacing:
        if survey_write.staged_equal_stored(conn, rows.month):
            survey_write.drop_staging(conn)
            return True, None
        return False, supersede(conn, rows.month)
    count, first = survey_write.staged_conflicts(conn, rows.month, _CONFLICT_IDS)
    if count:
        raise ConflictError(
            f"{source}: {count} row(s) repeat respondents stored for {rows.month} with "
            f"different answers (first: {', '.join(map(repr, first))}); nothing written. "
            "A corrected delivery replaces the month: ingest it with --replace"
        )
    return False, None


def _writer(conn: Connection) -> Callable[[Connection, SurveyRows, bool], int]:
    return _copy_postgres if conn.dialect.name == "postgresql" else _insert_sqlite


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
    started, month, content_hash = time.perf_counter(), valid.month, valid.content_hash
    seen, direct = state
    replacing = options.replace and month not in seen  # later inputs of the month add
    seen.add(month)

    def result(status: str, new: int, batch: str | None, replaced: int = 0) -> IngestResult:
        rejected = len(valid.rejected) if status in ("added", "replaced") else 0
        seconds = round(time.perf_counter() - started, 4)
        return IngestResult(
            item.source, month, content_hash, valid.rows, new, valid.rows - new - rejected,
            rejected, status, status == "already_ingested", batch, replaced, seconds,
        )  # fmt: skip

    earlier = _existing_batch(conn, content_hash)
    if earlier is not None:
        return result("already_ingested", 0, earlier)
    rows = SurveyRows(valid.ids, valid.values, month, str(uuid.uuid4()), utcnow())
    staged = not direct or _month_has_rows(conn, month)
    old = None
    if staged:
        unchanged, old = _staged(conn, rows, replacing, item.source)
        if unchanged:
            return result("unchanged", 0, None)
    conn.execute(
        ingest_batches.insert().values(
            batch_id=rows.batch_id, source=item.source[-2000:], content_hash=content_hash,
            survey_month=month, rows=valid.rows, rows_new=0, ingested_at=rows.now,
        )
    )  # fmt: skip
    if staged:
        new = survey_write.insert_staged(conn, rows)
        survey_write.drop_staging(conn)
    else:
        new = _writer(conn)(conn, rows, False)
    conn.execute(
        update(ingest_batches)
        .where(ingest_batches.c.batch_id == rows.batch_id)
        .values(rows_new=new)
    )
    _write_rejects(conn, item, valid, rows)
    if old is None:
        return result("added", new, rows.batch_id)
    record_replacement(
        conn, month, old, (content_hash, new), (item.source, options.actor, rows.now)
    )
    return result("replaced", new, rows.batch_id, old.old_rows)


Reader = Callable[[], _Input]


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


def file_reader(path: str | Path, error_limit: int = 20) -> Reader:
    """A delivery input of a ``.csv`` or ``.parquet`` survey file."""

    def read() -> _Input:
        file = Path(path)
        if not file.is_file():
            raise IngestError(f"survey file not found: {file}")
        suffix = file.suffix.lower()
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
