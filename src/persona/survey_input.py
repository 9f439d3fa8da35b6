"""Validating and hashing survey input before anything is written (no database here).

`validate_survey_frame` checks columns, month, respondent ids and features of a whole
input and reports the first N problems with their row numbers; `bytes_hash` and
`frame_hash` are the idempotence keys. Reading files is in `survey_file`; writing the
result is `store.survey_ingest`. A top-level module beside `features` (the row checks it
builds on), not in `store/`: it is pure and the store holds only database code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from persona.errors import DataValidationError, IngestError, Issue
from persona.features import (
    FEATURE_NAMES,
    Bounds,
    check_columns,
    validate_array,
    validate_frame,
)
from persona.months import Month, MonthError, parse_month

ID = "respondent_id"
MONTH = "survey_month"
MAX_ID_LENGTH = 64
KEYS = (ID, MONTH)
# Text columns stay Arrow-backed: string checks on a million ids run in Arrow, not Python.
TEXT = pd.StringDtype("pyarrow")

Renumber = Callable[[int], int]
"""Maps a 0-based row position to the number shown in errors (file line, 1-based row)."""


def frame_hash(frame: pd.DataFrame, month: Month) -> str:
    """sha256 of a frame's ids and features plus the month (the idempotence key of frames)."""
    digest = hashlib.sha256(f"frame|{month}|".encode())
    hashed = pd.util.hash_pandas_object(frame.loc[:, [ID, *FEATURE_NAMES]], index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def bytes_hash(content: bytes, month: str) -> str:
    """sha256 of a file's bytes plus the month (the idempotence key of files)."""
    digest = hashlib.sha256(f"file|{month}|".encode())
    digest.update(content)  # no concatenated copy of the file
    return digest.hexdigest()


def _month_issues(frame: pd.DataFrame, month: Month | None) -> tuple[Month | None, list[Issue]]:
    if MONTH not in frame.columns:
        return month, []
    values = frame[MONTH].astype(TEXT).str.strip().fillna("")
    uniques = [str(v) for v in values.unique()]
    valid: dict[str, Month | None] = {}
    for value in uniques:  # the cells of a file: an edge
        try:
            valid[value] = parse_month(value)
        except MonthError:
            valid[value] = None
    if month is None:
        good = [v for v in uniques if valid[v] is not None]
        if len(good) == 1:
            month = valid[good[0]]
        elif good:
            month = valid[str(values[values.isin(good)].value_counts().idxmax())]
    issues: list[Issue] = []
    for value in uniques:
        if valid[value] is None:
            message = f"invalid month {value!r}: expected YYYY-MM, e.g. 2025-03"
        elif month is not None and value != month:
            message = f"survey_month {value!r} does not match the month being ingested ({month})"
        else:
            continue
        hits = np.flatnonzero((values == value).to_numpy(dtype=bool))
        issues += [Issue(int(p), MONTH, message) for p in hits]
    return month, issues


def _orders(ids: pa.Array) -> tuple[bool, bool]:
    """Whether each id sorts after the one before: bytewise; by (length, bytes)."""
    if len(ids) < 2:
        return True, True
    before, after = ids[:-1], ids[1:]
    later = pc.greater(after, before)
    bytewise = bool(pc.all(later).as_py())
    size_before, size_after = pc.binary_length(before), pc.binary_length(after)
    longer = pc.greater(size_after, size_before)
    same_size_later = pc.and_(pc.equal(size_after, size_before), later)
    return bytewise, bool(pc.all(pc.or_(longer, same_size_later)).as_py())


def _ordered_distinct(ids: pa.Array) -> bool:
    """True when each id sorts after the one before, bytewise or by (length, bytes).

    Either order makes all ids distinct; it covers the usual exports (sorted ids, also
    numbered ids that outgrow their zero padding) in ~1/10 of a hash-based check.
    """
    return any(_orders(ids))


_CONTROL_CHARS = r"[\x00-\x1f\x7f-\x9f]"


def _id_issues(frame: pd.DataFrame, renumber: Renumber) -> tuple[pa.Array, list[Issue]]:
    """Issues of the respondent ids, taken as they are (never trimmed).

    Refused: empty, leading or trailing whitespace, a control character (newline, tab,
    C0/C1 controls), longer than `MAX_ID_LENGTH` characters, a duplicate.
    """
    ids = frame[ID].astype(TEXT).fillna("")
    rules = [
        (ids == "", "respondent_id is empty"),
        (
            (ids != ids.str.strip()) & (ids != ""),
            "respondent_id has leading or trailing spaces",
        ),
        (
            ids.str.contains(_CONTROL_CHARS, regex=True),
            "respondent_id contains a control character",
        ),
        (
            ids.str.len() > MAX_ID_LENGTH,
            f"respondent_id longer than {MAX_ID_LENGTH} characters",
        ),
    ]
    issues = [
        Issue(int(p), ID, message)
        for mask, message in rules
        for p in np.flatnonzero(mask.to_numpy(dtype=bool, na_value=False))
    ]
    array = pa.array(ids, type=pa.string())
    if isinstance(array, pa.ChunkedArray):  # one buffer for the checks and the COPY
        array = array.combine_chunks()
    if _ordered_distinct(array):  # sorted input: no duplicates, skip the hash-based check
        return array, issues
    dup = (ids.duplicated(keep="first") & (ids != "")).to_numpy(dtype=bool)
    if dup.any():
        first = {v: i for i, v in reversed(list(enumerate(ids.to_numpy())))}
        for p in np.flatnonzero(dup):
            value = ids.iloc[p]
            message = f"duplicate respondent_id {value!r} (first at row {renumber(first[value])})"
            issues.append(Issue(int(p), ID, message))
    return array, issues


def _features(frame: pd.DataFrame, bounds: Bounds, limit: int, what: str) -> np.ndarray:
    """`validate_frame`, with a fast path when every feature column is already float64.

    The columns are then stacked into one C-ordered array and checked by `validate_array`
    (same checks, same issues), instead of consolidating the frame's blocks (~0.3 s/1M rows).
    """
    if all(frame[name].dtype == np.float64 for name in FEATURE_NAMES):
        stacked = np.column_stack([frame[name].to_numpy() for name in FEATURE_NAMES])
        return validate_array(stacked, bounds, limit, what)
    return validate_frame(frame, bounds, KEYS, limit, what)


def check_rows(
    frame: pd.DataFrame,
    month: Month | None,
    bounds: Bounds,
    limit: int,
    what: str,
    note: str,
    renumber: Renumber,
) -> RowCheck:
    """Check the columns and month of an input (raising), and list its row issues.

    Args:
        frame: Columns ``respondent_id``, optional ``survey_month``, ``x1..x10``.
        month: Explicit month, or None to take it from the ``survey_month`` column.
        bounds: Allowed feature range.
        limit: How many problems to list at most.
        what: Name of the input for messages.
        note: How rows are numbered (said in the error summary).
        renumber: Maps a 0-based position to the number shown in messages.

    Returns:
        The month, ids, features and the row issues (`RowCheck`, rows 0-based).

    Raises:
        DataValidationError: Wrong or duplicate columns; no valid month cell at all.
        IngestError: No month at all.
    """
    columns = [str(c) for c in frame.columns]
    issues = [
        Issue(None, c, "duplicate column")
        for c in sorted({c for c in columns if columns.count(c) > 1})
    ]
    issues += check_columns(columns, allowed_extra=KEYS)
    if ID not in columns:
        issues.append(Issue(None, ID, "missing column"))
    if issues:
        expected = ", ".join([ID, f"[{MONTH}]", *FEATURE_NAMES])
        summary = f"invalid {what}: wrong columns (expected {expected})"
        raise DataValidationError(summary, issues[:limit])
    month, issues = _month_issues(frame, month)
    if month is None and issues:  # the column is there, but no cell holds a month
        issues = [Issue(renumber(i.row), i.column, i.message) for i in issues if i.row is not None]
        raise DataValidationError(
            f"invalid {what}: no survey_month cell holds a valid month; fix the column or "
            f"give the month (--month) ({note})",
            issues[:limit],
            len(issues),
        )
    if month is None:
        raise IngestError(f"{what}: no survey month: give one (--month) or a survey_month column")
    ids, id_issues = _id_issues(frame, renumber)
    issues += id_issues
    total = len(issues)
    values = np.empty((0, len(FEATURE_NAMES)))
    try:
        values = _features(frame, bounds, limit, what)
    except DataValidationError as exc:
        issues += exc.issues
        total += exc.total
    issues.sort(key=lambda i: (i.row if i.row is not None else -1, str(i.column)))
    return RowCheck(month, ids, values, issues, total)


@dataclass(frozen=True)
class RowCheck:
    """The rows of an input after the column and month checks, with their issues.

    Attributes:
        month: The month of the input.
        ids: Respondent ids (meaningful when `total` is 0).
        values: float64 features ``(rows, 10)`` (meaningful when `total` is 0).
        issues: The row issues found (0-based positions), sorted by row.
        total: How many issues there are in all (may exceed ``len(issues)``).
    """

    month: Month
    ids: pa.Array
    values: np.ndarray
    issues: list[Issue]
    total: int


def validate_survey_frame(
    frame: pd.DataFrame,
    month: Month | None,
    bounds: Bounds,
    limit: int,
    what: str,
    note: str,
    renumber: Renumber,
) -> tuple[Month, pa.Array, np.ndarray]:
    """Validate a whole input before anything is written.

    Args: as `check_rows`.

    Returns:
        ``(month, respondent ids as str, float64 features (rows, 10))``.

    Raises:
        DataValidationError: Wrong columns, bad month cells, empty/long/duplicate ids, ids
            with control characters or surrounding spaces, text/NaN/inf/out-of-range
            features.
        IngestError: No month at all.
    """
    found = check_rows(frame, month, bounds, limit, what, note, renumber)
    if found.total:
        issues = [
            Issue(None if i.row is None else renumber(i.row), i.column, i.message)
            for i in found.issues[:limit]
        ]
        raise DataValidationError(f"invalid {what} ({note})", issues, found.total)
    return found.month, found.ids, found.values


def _month_guess(frame: pd.DataFrame, month: Month | None) -> str | None:
    """The month the content hash will most likely use (known for sure after validation)."""
    if month is not None or MONTH not in frame.columns or len(frame) == 0:
        return month
    first = frame[MONTH].iloc[0]
    return first.strip() if isinstance(first, str) else None


@dataclass(frozen=True)
class BadRowLimit:
    """How many invalid rows an input may hold and still go in without them.

    Attributes:
        count: At most this many rows (when `share` is None).
        share: Or at most this fraction of the input's rows (rounded down).
    """

    count: int = 0
    share: float | None = None

    def allowed(self, rows: int) -> int:
        """The invalid rows an input of `rows` rows may hold."""
        return self.count if self.share is None else int(rows * self.share)

    def __str__(self) -> str:
        return str(self.count) if self.share is None else f"{self.share * 100:g}%"


STRICT = BadRowLimit()


def parse_bad_rows(text: str) -> BadRowLimit:
    """Read ``--max-bad-rows``: a row count (``25``) or a share of the rows (``0.1%``).

    Raises:
        IngestError: Neither a non-negative whole number nor a percentage within 0-100.
    """
    value = text.strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1]) / 100
            if 0 <= share <= 1:
                return BadRowLimit(share=share)
        elif int(value) >= 0:
            return BadRowLimit(count=int(value))
    except ValueError:
        pass
    raise IngestError(f"--max-bad-rows {text!r}: expected a row count (25) or a share (0.1%)")


_ISSUES_PER_ROW = 2 + len(FEATURE_NAMES)  # month, id rules, one per feature


def _drop_rows(frame: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    keep[rows] = False
    return frame[keep].reset_index(drop=True)


def _through(positions: np.ndarray, renumber: Renumber) -> Renumber:
    """`renumber` of a subset of the rows: position in the subset -> number shown."""
    return lambda p: renumber(int(positions[p]))


def check_with_rejects(
    frame: pd.DataFrame,
    month: Month | None,
    limits: tuple[Bounds, int],
    numbering: tuple[str, str, Renumber],
    allowed: int,
) -> tuple[RowCheck, list[Issue]]:
    """Validate, setting aside up to `allowed` invalid rows instead of failing.

    Each pass takes out the rows found bad and checks the rest again (a text cell hides
    the range checks of its column), until the rest is clean.

    Returns:
        The check of the rows kept (no issues) and one issue per rejected row (its first),
        rows as 0-based positions of `frame`.

    Raises:
        DataValidationError: More invalid rows than allowed (the strict report, saying
            so), or column problems.
    """
    (bounds, limit), (what, note, renumber) = limits, numbering
    positions = np.arange(len(frame))
    rejected: dict[int, Issue] = {}
    rest = frame
    for _ in range(4):
        room = allowed - len(rejected)
        shown = _through(positions, renumber)
        found = check_rows(rest, month, bounds, _ISSUES_PER_ROW * room + 1, what, note, shown)
        if not found.total:
            return found, [rejected[p] for p in sorted(rejected)]
        rows = sorted({i.row for i in found.issues if i.row is not None})
        whole = any(i.row is None for i in found.issues)
        if whole or found.total > len(found.issues) or len(rows) > room:
            break
        for issue in found.issues:
            at = int(positions[issue.row])  # type: ignore[index]
            rejected.setdefault(at, Issue(at, issue.column, issue.message))
        rest, positions, month = _drop_rows(rest, rows), np.delete(positions, rows), found.month
    note = f"{note}; more invalid rows than the {allowed} --max-bad-rows allows"
    validate_survey_frame(frame, month, bounds, limit, what, note, renumber)
    raise IngestError(f"{what}: could not set the invalid rows aside")  # not reached


@dataclass(frozen=True)
class Validated:
    """An input ready to write.

    Attributes:
        month: Its month.
        ids: Respondent ids of the rows kept.
        values: Their float64 features ``(rows, 10)``.
        content_hash: The idempotence key (`bytes_hash` or `frame_hash`).
        rows: Rows in the input (kept and rejected).
        rejected: One issue per rejected row (0-based position, first problem).
    """

    month: Month
    ids: pa.Array
    values: np.ndarray
    content_hash: str
    rows: int
    rejected: tuple[Issue, ...] = ()


def validate_and_hash(
    frame: pd.DataFrame,
    month: Month | None,
    content: bytes | None,
    limits: tuple[Bounds, int],
    numbering: tuple[str, str, Renumber],
    bad_rows: BadRowLimit = STRICT,
) -> Validated:
    """Validate (`validate_survey_frame`, or `check_with_rejects`) and hash an input.

    The file bytes are hashed in a thread (sha256 releases the GIL) for the likely month
    while the frame is validated; recomputed in the rare case the month turns out different.

    Args:
        frame: The input.
        month: Explicit month or None.
        content: The file bytes, or None for a frame.
        limits: ``(bounds, error limit)``.
        numbering: ``(what, note, renumber)`` as in `validate_survey_frame`.
        bad_rows: How many invalid rows may be set aside (default none).

    Returns:
        The rows to write and the rejected ones (`Validated`).
    """
    guess = _month_guess(frame, month) if content is not None else None
    allowed = bad_rows.allowed(len(frame))
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = None if guess is None else pool.submit(bytes_hash, content or b"", guess)
        month, ids, values, rejected = validate_rows(frame, month, limits, numbering, allowed)
        if content is None:
            digest = frame_hash(frame, month)
        elif hashing is not None and guess == month:
            digest = hashing.result()
        else:
            digest = bytes_hash(content, month)
    return Validated(month, ids, values, digest, len(frame), tuple(rejected))


def validate_rows(
    frame: pd.DataFrame,
    month: Month | None,
    limits: tuple[Bounds, int],
    numbering: tuple[str, str, Renumber],
    allowed: int,
) -> tuple[Month, pa.Array, np.ndarray, list[Issue]]:
    """`validate_survey_frame`, or `check_with_rejects` when `allowed` rows may be bad.

    Returns:
        ``(month, ids, features, rejected rows)`` (rejected: one issue each, 0-based).
    """
    if not allowed:
        what, note, renumber = numbering
        found = validate_survey_frame(frame, month, limits[0], limits[1], what, note, renumber)
        return (*found, [])
    kept, rejected = check_with_rejects(frame, month, limits, numbering, allowed)
    return kept.month, kept.ids, kept.values, rejected


class IdOrder:
    """Whether the ids of several chunks are distinct, proven by their order (no id set).

    They are when every id sorts after the one before in one of the two orders of
    `_ordered_distinct`, across the chunks' boundaries too.
    """

    def __init__(self) -> None:
        self._holds = (True, True)
        self._last: pa.Array | None = None

    @property
    def distinct(self) -> bool:
        """Whether the ids taken so far are proven distinct."""
        return any(self._holds)

    def add(self, ids: pa.Array) -> None:
        """Take the next chunk's ids."""
        if not self.distinct or len(ids) == 0:
            return
        joined = ids if self._last is None else pa.concat_arrays([self._last, ids])
        found = _orders(joined)
        self._holds = (self._holds[0] and found[0], self._holds[1] and found[1])
        self._last = ids.slice(len(ids) - 1, 1)
