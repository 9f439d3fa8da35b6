"""`monitoring_runs`: one row per monitoring check, unique per month + reference + model + data.

`reference_months` is stored as a comma-separated, sorted list of ``YYYY-MM`` months
(`reference_key`); in Python it is a `Window`. A check to record is a `MonitoringCheck`;
a stored row comes back as a `MonitoringRun` (the check plus its id, action and time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.cycle_state import is_stale
from persona.errors import StoreError
from persona.months import Month, Window
from persona.store.engine import utcnow
from persona.store.schema import monitoring_runs

_T = monitoring_runs.c


def reference_key(months: Iterable[str]) -> str:
    """Return the stored form of a reference window (sorted, comma-separated)."""
    return ",".join(sorted(set(months)))


@dataclass(frozen=True)
class MonitoringCheck:
    """One monitoring check, as `monitoring_runs` records it.

    Attributes:
        survey_month: The month checked.
        reference_months: The reference window.
        model_name: Registered model name.
        model_version: Model version.
        data_hash: Fingerprint of the data and check parameters (the idempotence key).
        n_current: Rows of the month.
        n_reference: Rows of the reference window.
        n_current_sampled: Rows of the month the drift tests used (None without them).
        n_reference_sampled: Rows of the reference the drift tests used.
        drift_share: Share of drifted features.
        dataset_drift: Evidently's dataset drift flag.
        decision: The verdict.
        reasons: Why (JSON list).
        feature_results: Per-feature drift results (JSON list).
        persona_fit: Persona fit statistics (JSON object).
        report_path: The HTML report written, if any.
        mlflow_run_id: The MLflow run logged, if any.
    """

    survey_month: Month
    reference_months: Window
    model_name: str
    model_version: str
    data_hash: str
    n_current: int
    n_reference: int
    n_current_sampled: int | None
    n_reference_sampled: int | None
    drift_share: float | None
    dataset_drift: bool | None
    decision: str
    reasons: list[str]
    feature_results: list[dict[str, Any]]
    persona_fit: dict[str, Any]
    report_path: str | None
    mlflow_run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """The column values (``reference_months`` in its stored, comma-separated form)."""
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "survey_month": str(self.survey_month),
            "reference_months": reference_key(self.reference_months),
            "model_version": str(self.model_version),
        }


@dataclass(frozen=True)
class MonitoringRun(MonitoringCheck):
    """A stored check.

    Attributes:
        run_id: The row id.
        action_taken: What the cycle did after it (`cycle_state`), or None.
        created_at: When it was stored.
    """

    run_id: int
    action_taken: str | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> MonitoringRun:
        """The run of a `monitoring_runs` row (the database is an edge: months are checked)."""
        values = dict(row)
        values["survey_month"] = Month(values["survey_month"])
        values["reference_months"] = Window.of(str(values["reference_months"]).split(","))
        values["model_version"] = str(values["model_version"])
        return cls(**values)


def find_run(
    engine: Engine,
    month: Month,
    reference_months: Sequence[str],
    model_name: str,
    model_version: str,
    data_hash: str,
) -> MonitoringRun | None:
    """Return the stored run of an identical check, or None.

    Args:
        engine: The store engine.
        month: Current month.
        reference_months: Reference window.
        model_name: Registered model name.
        model_version: Model version.
        data_hash: Fingerprint of the data and check parameters.

    Returns:
        The stored run, or None.
    """
    query = select(monitoring_runs).where(
        _T.survey_month == month,
        _T.reference_months == reference_key(reference_months),
        _T.model_name == model_name,
        _T.model_version == str(model_version),
        _T.data_hash == data_hash,
    )
    try:
        with engine.connect() as conn:
            row = conn.execute(query).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read monitoring runs: {exc}") from exc
    return MonitoringRun.from_row(row._mapping) if row is not None else None


def record_run(engine: Engine, check: MonitoringCheck) -> int:
    """Store one check; an identical check (same unique key) returns the existing id.

    Args:
        engine: The store engine.
        check: The check (stored at the current time).

    Returns:
        The run id.
    """
    row = {**check.to_dict(), "created_at": utcnow()}
    try:
        with engine.begin() as conn:
            key = conn.execute(monitoring_runs.insert().values(**row)).inserted_primary_key
            return int(key[0]) if key else 0
    except IntegrityError:
        existing = find_run(
            engine,
            check.survey_month,
            check.reference_months.months,
            check.model_name,
            str(check.model_version),
            check.data_hash,
        )
        if existing is None:
            raise
        return existing.run_id
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record monitoring run: {exc}") from exc


def judged_months(
    engine: Engine, model_name: str, model_version: str, before: Month
) -> dict[str, str]:
    """The verdict each month before `before` got from one model version, as stored.

    A month's verdict is that of the run its cycle acted on (the earliest run with an
    action), else of its earliest run: later checks of the same month (another reference,
    a replay) never change it, so the baseline built from it is the same on a replay.
    Runs a ``--replace`` of their month marked stale are not verdicts any more.

    Args:
        engine: The store engine.
        model_name: Registered model name.
        model_version: The version that judged the months.
        before: Only months strictly before this one.

    Returns:
        ``{month: verdict}``.
    """
    query = (
        select(_T.survey_month, _T.decision, _T.action_taken)
        .where(
            _T.model_name == model_name,
            _T.model_version == str(model_version),
            _T.survey_month < str(before),
        )
        .order_by(_T.run_id)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read monitoring runs: {exc}") from exc
    first: dict[str, str] = {}
    acted: dict[str, str] = {}
    for month, decision, action in rows:
        if is_stale(action):
            continue
        first.setdefault(str(month), decision)
        if action:
            acted.setdefault(str(month), decision)
    return {**first, **acted}


def set_action(engine: Engine, run_id: int, action: str) -> None:
    """Record the action the cycle took after a check (e.g. ``retrained``, ``alerted``).

    Args:
        engine: The store engine.
        run_id: The run.
        action: Short action name.
    """
    with engine.begin() as conn:
        conn.execute(update(monitoring_runs).where(_T.run_id == run_id).values(action_taken=action))


def list_runs(
    engine: Engine, month: Month | None = None, limit: int | None = None
) -> list[MonitoringRun]:
    """Return stored runs, newest first.

    Args:
        engine: The store engine.
        month: Only runs of this month (all when None).
        limit: At most this many rows.

    Returns:
        One `MonitoringRun` per row.
    """
    query = select(monitoring_runs).order_by(_T.run_id.desc())
    if month is not None:
        query = query.where(_T.survey_month == month)
    if limit is not None:
        query = query.limit(limit)
    try:
        with engine.connect() as conn:
            return [MonitoringRun.from_row(row._mapping) for row in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read monitoring runs: {exc}") from exc


def get_run(engine: Engine, run_id: int) -> MonitoringRun:
    """Return one stored run by id.

    Raises:
        StoreError: No such run, or the store cannot be read.
    """
    try:
        with engine.connect() as conn:
            row = conn.execute(select(monitoring_runs).where(_T.run_id == run_id)).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read monitoring run {run_id}: {exc}") from exc
    if row is None:
        raise StoreError(f"monitoring run {run_id} does not exist")
    return MonitoringRun.from_row(row._mapping)
