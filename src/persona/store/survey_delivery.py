"""Writing one input of a delivery in the delivery's transaction (`survey_ingest`).

`write_input` writes a validated input; `write_chunked` a large file chunk by chunk. Both
load the rows straight into ``survey_responses`` (a month without rows) or into the
staging table, then `_settle` them: refuse conflicting answers (`ConflictError`), or with
``replace`` supersede the month (`survey_replace`) unless the rows are already exactly
the stored ones (``unchanged``); then the batch row, the rejects and the audit row.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from persona.errors import DataValidationError, IngestError, Issue
from persona.features import DEFAULT_BOUNDS, Bounds
from persona.months import Month
from persona.store import survey_write
from persona.store.engine import utcnow
from persona.store.schema import ingest_batches, survey_rejects, survey_responses
from persona.store.survey_replace import record_replacement, supersede
from persona.store.survey_write import SurveyRows
from persona.store.survey_write import copy_postgres as _copy_postgres
from persona.store.survey_write import insert_sqlite as _insert_sqlite
from persona.survey_file import file_hash
from persona.survey_input import STRICT, BadRowLimit, IdOrder, Renumber, Validated, validate_rows

_CONFLICT_IDS = 5  # respondent ids named in a conflict error
_RAW_CHARS = 2000  # of a rejected row's text kept in survey_rejects


class ConflictError(IngestError):
    """Rows of an input repeat stored respondents of the month with different answers."""


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
class Input:
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
class Chunked:
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


def write_input(
    conn: Connection,
    item: Input,
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


def write_chunked(
    conn: Connection, item: Chunked, options: IngestOptions, state: tuple[set[Month], bool]
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
