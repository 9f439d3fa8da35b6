"""`monitoring_runs`: one row per monitoring check, unique per month + reference + model + data.

`reference_months` is stored as a comma-separated, sorted list of ``YYYY-MM`` months.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from persona.errors import StoreError
from persona.store.engine import utcnow
from persona.store.schema import monitoring_runs

_T = monitoring_runs.c


def reference_key(months: Sequence[str]) -> str:
    """Return the stored form of a reference window (sorted, comma-separated)."""
    return ",".join(sorted(set(months)))


def find_run(
    engine: Engine,
    month: str,
    reference_months: Sequence[str],
    model_name: str,
    model_version: str,
    data_hash: str,
) -> dict[str, Any] | None:
    """Return the stored run of an identical check, or None.

    Args:
        engine: The store engine.
        month: Current month.
        reference_months: Reference window.
        model_name: Registered model name.
        model_version: Model version.
        data_hash: Fingerprint of the data and check parameters.

    Returns:
        The row as a dict (every column), or None.
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
    return dict(row._mapping) if row is not None else None


def record_run(engine: Engine, values: dict[str, Any]) -> int:
    """Store one check; an identical check (same unique key) returns the existing id.

    Args:
        engine: The store engine.
        values: Column values; ``reference_months`` may be a list; ``created_at`` is
            filled when missing.

    Returns:
        The run id.
    """
    row = dict(values)
    refs = row["reference_months"]
    row["reference_months"] = refs if isinstance(refs, str) else reference_key(refs)
    row["model_version"] = str(row["model_version"])
    row.setdefault("created_at", utcnow())
    try:
        with engine.begin() as conn:
            key = conn.execute(monitoring_runs.insert().values(**row)).inserted_primary_key
            return int(key[0]) if key else 0
    except IntegrityError:
        existing = find_run(
            engine,
            row["survey_month"],
            row["reference_months"].split(","),
            row["model_name"],
            row["model_version"],
            row["data_hash"],
        )
        if existing is None:
            raise
        return int(existing["run_id"])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record monitoring run: {exc}") from exc


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
    engine: Engine, month: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Return stored runs, newest first.

    Args:
        engine: The store engine.
        month: Only runs of this month (all when None).
        limit: At most this many rows.

    Returns:
        One dict per run with every column.
    """
    query = select(monitoring_runs).order_by(_T.run_id.desc())
    if month is not None:
        query = query.where(_T.survey_month == month)
    if limit is not None:
        query = query.limit(limit)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read monitoring runs: {exc}") from exc
