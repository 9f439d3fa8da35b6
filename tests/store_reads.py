"""Reads of the labels that only the tests need (the package never reads them this way)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, func, select

from persona.store.schema import persona_assignments as pa_table


def count_assignments(engine: Engine, month: str, model_name: str, model_version: str) -> int:
    """Count the labels a model version wrote for a month."""
    c = pa_table.c
    query = (
        select(func.count())
        .select_from(pa_table)
        .where(
            c.survey_month == month,
            c.model_name == model_name,
            c.model_version == str(model_version),
        )
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def load_assignments(
    engine: Engine, month: str, model_name: str | None = None, model_version: str | None = None
) -> pd.DataFrame:
    """A month's labels (optionally of one model and version), every column, by response id."""
    c = pa_table.c
    condition = c.survey_month == month
    if model_name is not None:
        condition &= c.model_name == model_name
    if model_version is not None:
        condition &= c.model_version == str(model_version)
    query = select(pa_table).where(condition).order_by(c.response_id, c.model_name, c.model_version)
    with engine.connect() as conn:
        rows = conn.execute(query).fetchall()
    return pd.DataFrame(rows, columns=[col.name for col in pa_table.columns])
