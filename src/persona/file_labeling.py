"""Label a Parquet or CSV file on one machine, streamed: the output of `persona spark label`.

``persona label --input respondents/ --output labels/`` reads the respondents batch by
batch (Parquet row groups, CSV blocks; Arrow's scanner reads ahead on its own threads),
labels each batch with `PersonaModel.predict` and hands it to a writer thread, so reading,
labelling and writing overlap and memory stays bounded by a few batches whatever the size
of the input. The labels land in the layout the Spark job writes (Parquet partitioned by
``model_name``, ``model_version``, ``survey_month``), with the same columns and lineage.

A run writes into a hidden staging folder under the output and moves its partitions into
place only when every row is labelled: a failed run (bad value, full disk) leaves the
output as it was, and a rerun replaces exactly its own partitions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from persona.errors import DataValidationError, Issue
from persona.features import FEATURE_NAMES
from persona.model import UNASSIGNED_ID, UNASSIGNED_NAME, LoadedModel, PersonaModel
from persona.months import Month

ID_COLUMN = "response_id"
MONTH_COLUMN = "survey_month"
BATCH_ROWS = 262_144
_QUEUE_BATCHES = 2


@dataclass(frozen=True)
class FileLabelResult:
    """What labeling a file did (`to_dict` is the ``--json`` document).

    Attributes:
        input: The Parquet or CSV respondents read.
        output: Root of the partitioned Parquet labels written.
        month: The month kept (None: every month of the input).
        model_name: Registered model name (lineage).
        model_version: Registered model version (lineage).
        rows: Labels written.
        persona_mix: Labels per persona id, sorted by id.
        unassigned_rate: Share of ``unassigned`` labels (None without rows).
        seconds: Wall time.
        rows_per_s: Throughput (None when no time passed).
    """

    input: str
    output: str
    month: Month | None
    model_name: str
    model_version: str
    rows: int
    persona_mix: dict[str, int]
    unassigned_rate: float | None
    seconds: float
    rows_per_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**asdict(self), "month": None if self.month is None else str(self.month)}


def label_figures(mix: Mapping[str, int], started: float) -> dict[str, Any]:
    """The figures every labeling result reports, from its labels per persona.

    Args:
        mix: Labels per persona id.
        started: `time.perf_counter` when the run started.

    Returns:
        ``rows``, ``persona_mix`` (sorted by id), ``unassigned_rate``, ``seconds`` and
        ``rows_per_s`` (the fields of `FileLabelResult` and `SparkLabelResult`).
    """
    rows = sum(mix.values())
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "persona_mix": dict(sorted(mix.items())),
        "unassigned_rate": mix.get(UNASSIGNED_ID, 0) / rows if rows else None,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
    }


def open_respondents(path: str | Path, month: Month | None = None) -> ds.Dataset:
    """Open a Parquet or CSV file or folder of respondents and check its columns.

    Raises:
        DataValidationError: The path is unreadable or a required column is missing.
    """
    fmt = "csv" if str(path).endswith(".csv") else "parquet"
    try:
        dataset = ds.dataset(str(path), format=fmt)
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise DataValidationError(f"cannot read {path}", [Issue(None, None, str(exc))]) from None
    names = set(dataset.schema.names)
    issues = [Issue(None, c, f"missing in {path}") for c in (ID_COLUMN, *FEATURE_NAMES)
              if c not in names]  # fmt: skip
    if MONTH_COLUMN not in names and month is None:
        issues.append(Issue(None, MONTH_COLUMN, f"missing in {path}; pass the month"))
    if issues:
        raise DataValidationError(f"{path} is not a respondent dataset", issues)
    return dataset


def _batches(dataset: ds.Dataset, month: Month | None) -> Iterator[pa.RecordBatch]:
    has_month = MONTH_COLUMN in dataset.schema.names
    columns = [ID_COLUMN, *FEATURE_NAMES, *([MONTH_COLUMN] if has_month else [])]
    where = ds.field(MONTH_COLUMN) == str(month) if has_month and month is not None else None
    yield from dataset.to_batches(columns=columns, filter=where, batch_size=BATCH_ROWS)


def _features(batch: pa.RecordBatch) -> np.ndarray:
    x = np.column_stack([
        batch.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in FEATURE_NAMES
    ])  # fmt: skip
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        rid = batch.column(ID_COLUMN)[int(row)].as_py()
        raise DataValidationError(
            "respondent features must be finite numbers",
            [Issue(None, FEATURE_NAMES[col], f"{x[row, col]} for {ID_COLUMN} {rid}")],
        )
    return x


def _label_table(model: PersonaModel, batch: pa.RecordBatch, labeled_at: dt.datetime) -> pa.Table:
    """One batch's labels (dictionary-encoded ids and names: no per-row Python strings)."""
    pred = model.predict(_features(batch))
    ids = pa.array([*model.persona_ids, UNASSIGNED_ID])
    names = pa.array([*model.persona_names, UNASSIGNED_NAME])
    label = pa.array(np.where(pred.assigned, pred.nearest_index, model.k).astype(np.int32))
    nearest = pa.array(pred.nearest_index.astype(np.int32))
    return pa.table({
        ID_COLUMN: batch.column(ID_COLUMN).cast(pa.int64()),
        "persona_id": pa.DictionaryArray.from_arrays(label, ids),
        "persona_name": pa.DictionaryArray.from_arrays(label, names),
        "nearest_persona_id": pa.DictionaryArray.from_arrays(nearest, ids),
        "distance": pred.distance,
        "margin": pred.margin,
        "unassigned": ~pred.assigned,
        "assigned_at": pa.array(np.full(len(pred), np.datetime64(labeled_at, "us"))),
    })  # fmt: skip


class _Writer:
    """Writes label tables on its own thread, one Parquet file per month partition."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, pq.ParquetWriter] = {}
        self.jobs: queue.Queue[tuple[str, pa.Table] | None] = queue.Queue(_QUEUE_BATCHES)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="label-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue
            month, table = job
            try:
                if month not in self.files:
                    folder = self.root / f"{MONTH_COLUMN}={month}"
                    folder.mkdir(parents=True)
                    self.files[month] = pq.ParquetWriter(folder / "part-0.parquet", table.schema)
                self.files[month].write_table(table)
            except BaseException as exc:  # reported on the caller's thread by close()
                self.error = exc

    def put(self, month: str, table: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put((month, table))

    def close(self) -> list[str]:
        """Wait for the writes, close the files and return the months written."""
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        for writer in self.files.values():
            writer.close()
        if self.error is not None:
            raise self.error
        return sorted(self.files)

    def abort(self) -> None:
        """Stop after a failure elsewhere; the caller's error is the one reported."""
        self.error = self.error or RuntimeError("aborted")
        with contextlib.suppress(BaseException):  # the caller's exception propagates
            self.close()


def _split_months(
    batch: pa.RecordBatch, month: Month | None
) -> Iterator[tuple[str, pa.RecordBatch]]:
    if MONTH_COLUMN not in batch.schema.names:
        yield str(month), batch
        return
    months = batch.column(MONTH_COLUMN).cast(pa.string())
    values = months.unique().to_pylist()
    if len(values) == 1:
        yield str(values[0]), batch
        return
    for value in values:
        yield str(value), batch.filter(pc.equal(months, value))


@contextlib.contextmanager
def _bad_cells(path: str | Path) -> Iterator[None]:
    """Turn Arrow's refusal of a cell (``abc`` as a feature, ``1.5`` as an id) into bad input."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise DataValidationError(
            f"{path} has a value of the wrong type", [Issue(None, None, first[:500])]
        ) from None


def label_file(
    loaded: LoadedModel, input_path: str | Path, output_path: str | Path, month: Month | None = None
) -> FileLabelResult:
    """Label every row of a Parquet or CSV file (or folder), streamed, into partitioned Parquet.

    Args:
        loaded: The model and its registered name and version (lineage).
        input_path: Respondents: ``response_id``, ``x1..x10`` and ``survey_month``.
        output_path: Root of the labels, laid out as `persona spark label` writes them.
        month: Only this month (or the month of an input without ``survey_month``).

    Returns:
        What was done (`FileLabelResult`).

    Raises:
        DataValidationError: Missing columns, a cell that is not a number (a feature, an
            integer ``response_id``) or a non-finite feature (nothing is written).
    """
    started = time.perf_counter()
    dataset = open_respondents(input_path, month)
    root = Path(output_path)
    part = Path(f"model_name={loaded.name}") / f"model_version={loaded.version}"
    staging = root / f".staging-{uuid.uuid4().hex}"
    labeled_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    counts: Counter[str] = Counter()
    writer = _Writer(staging / part)
    try:
        try:
            with _bad_cells(input_path):
                for batch in _batches(dataset, month):
                    for value, rows in _split_months(batch, month):
                        table = _label_table(loaded.model, rows, labeled_at)
                        counts.update(_mix(table))
                        writer.put(value, table)
        except BaseException:
            writer.abort()
            raise
        months = writer.close()
        for value in months:  # every row is labelled: move the partitions into place
            target = root / part / f"{MONTH_COLUMN}={value}"
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            (staging / part / f"{MONTH_COLUMN}={value}").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FileLabelResult(
        input=str(input_path), output=str(output_path), month=month, model_name=loaded.name,
        model_version=str(loaded.version), **label_figures(counts, started),
    )  # fmt: skip


def _mix(table: pa.Table) -> dict[str, int]:
    column = table.column("persona_id").combine_chunks()
    counts = np.bincount(column.indices.to_numpy(), minlength=len(column.dictionary))
    return {str(k): int(n) for k, n in zip(column.dictionary.to_pylist(), counts, strict=True) if n}
