"""Superseding a stored month (`persona data ingest --replace`) and recording it.

Runs inside the delivery's transaction (`survey_ingest`): the month's responses, their
labels, its ingest batches and rejects are deleted, its monitoring runs marked stale
(`cycle_state.stale_action`: the next cycle of the month checks and labels it afresh), and
one `survey_replacements` row records what was replaced, by whom and when.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, func, literal, or_, select

from persona.cycle_state import STALE_PREFIX
from persona.months import Month
from persona.store.schema import (
    ingest_batches,
    monitoring_runs,
    persona_assignments,
    survey_rejects,
    survey_replacements,
    survey_responses,
)


@dataclass(frozen=True)
class Superseded:
    """What replacing a month removed or marked.

    Attributes:
        old_content_hash: The content hashes of the month's batches that held rows,
            sorted, comma-separated.
        old_rows: Responses the month held.
        labels_dropped: Labels of those responses, deleted with them.
        runs_marked_stale: Monitoring runs of the month marked stale.
    """

    old_content_hash: str
    old_rows: int
    labels_dropped: int
    runs_marked_stale: int


def supersede(conn: Connection, month: Month) -> Superseded:
    """Delete a month's rows, labels, batches and rejects; mark its monitoring runs stale."""
    batches = ingest_batches.c
    hashes = conn.execute(
        select(batches.content_hash)
        .where(batches.survey_month == month, batches.rows_new > 0)
        .order_by(batches.content_hash)
    ).scalars()
    old_hash = ",".join(hashes)
    labels = conn.execute(
        persona_assignments.delete().where(persona_assignments.c.survey_month == month)
    ).rowcount
    old_rows = conn.execute(
        survey_responses.delete().where(survey_responses.c.survey_month == month)
    ).rowcount
    for table in (ingest_batches, survey_rejects):
        conn.execute(table.delete().where(table.c.survey_month == month))
    action = monitoring_runs.c.action_taken
    runs = conn.execute(
        monitoring_runs.update()
        .where(
            monitoring_runs.c.survey_month == month,
            or_(action.is_(None), ~action.startswith(STALE_PREFIX, autoescape=True)),
        )
        .values(action_taken=literal(STALE_PREFIX) + func.coalesce(action, ""))
    ).rowcount
    return Superseded(old_hash, int(old_rows), int(labels), int(runs))


def record_replacement(
    conn: Connection,
    month: Month,
    old: Superseded,
    new: tuple[str, int],
    who: tuple[str, str, dt.datetime],
) -> None:
    """Write the audit row of a replacement.

    Args:
        conn: The delivery's connection.
        month: The month replaced.
        old: What `supersede` removed.
        new: The new content hash and the rows now stored.
        who: The source file, the actor and the time.
    """
    source, actor, now = who
    conn.execute(
        survey_replacements.insert().values(
            survey_month=month,
            old_content_hash=old.old_content_hash,
            new_content_hash=new[0],
            old_rows=old.old_rows,
            new_rows=new[1],
            labels_dropped=old.labels_dropped,
            runs_marked_stale=old.runs_marked_stale,
            source=source[-2000:],
            actor=actor[:128],
            replaced_at=now,
        )
    )
