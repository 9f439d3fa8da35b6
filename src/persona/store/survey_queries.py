"""Reads of the survey store: months back as DataFrames, the month list, fingerprints."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import StoreError
from persona.features import FEATURE_NAMES
from persona.months import parse_month
from persona.store.schema import ingest_batches, survey_responses
from persona.store.survey_input import ID, MONTH

_LOAD_COLUMNS = ("response_id", ID, MONTH, *FEATURE_NAMES)


def load_months(engine: Engine, months: Sequence[str]) -> pd.DataFrame:
    """Load the responses of several months, ordered by month then response id.

    Args:
        engine: The store engine.
        months: ``YYYY-MM`` months.

    Returns:
        Columns ``response_id, respondent_id, survey_month, x1..x10`` (empty if none).
    """
    wanted = sorted({parse_month(m) for m in months})
    columns = [survey_responses.c[name] for name in _LOAD_COLUMNS]
    query = (
        select(*columns)
        .where(survey_responses.c[MONTH].in_(wanted))
        .order_by(survey_responses.c[MONTH], survey_responses.c.response_id)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).fetchall()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read survey months {wanted}: {exc}") from exc
    frame = pd.DataFrame(rows, columns=list(_LOAD_COLUMNS))
    dtypes = {"response_id": "int64", ID: "object", MONTH: "object"}
    return frame.astype({**dtypes, **dict.fromkeys(FEATURE_NAMES, "float64")})


def load_month(engine: Engine, month: str) -> pd.DataFrame:
    """Load one month's responses ordered by response id (file order).

    Args:
        engine: The store engine.
        month: ``YYYY-MM``.

    Returns:
        Columns ``response_id, respondent_id, survey_month, x1..x10`` (empty if none).
    """
    return load_months(engine, [month])


def list_months(engine: Engine) -> list[dict[str, Any]]:
    """List the stored months with their row counts, oldest first.

    Returns:
        ``[{"month": "2025-01", "rows": 500}, ...]``.
    """
    month = survey_responses.c[MONTH]
    query = select(month, func.count()).group_by(month).order_by(month)
    try:
        with engine.connect() as conn:
            return [{"month": str(m), "rows": int(n)} for m, n in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot list survey months: {exc}") from exc


def month_fingerprint(engine: Engine, months: Sequence[str]) -> str:
    """A sha256 over the months' ingest batches (content hash and rows written).

    Batches that wrote no new rows (a re-ingest of the same data in another format) do
    not count, so the same stored data gives the same value.

    Args:
        engine: The store engine.
        months: ``YYYY-MM`` months.

    Returns:
        Hex digest.
    """
    wanted = sorted({parse_month(m) for m in months})
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
