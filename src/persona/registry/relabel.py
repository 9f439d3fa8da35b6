"""Labels follow the champion: after a promotion, relabel the months since the drift.

Every way a version becomes champion (`promotion.promote`, the review's approve step, the
governance of a move made in the MLflow UI) calls `relabel_after_move`. The months the
previous champion labelled, from the drift month on, get the new champion's labels:
appended with their own model version (the table is append-only and unique per response
and version), so a replay writes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from persona import labeling
from persona.months import Month
from persona.registry.reviews import read_review
from persona.registry.tracking import client
from persona.registry.versions import get_version, load_model_for_serving
from persona.settings import Settings
from persona.store import assignments
from persona.store.survey_queries import list_months

log = logging.getLogger(__name__)


def drift_month(tags: dict[str, str]) -> Month | None:
    """The month a version answers: its review's first month, else its last training month."""
    review = read_review(tags)
    if review and review.get("first_month"):
        return Month(review["first_month"])
    trained = [m for m in tags.get("training_months", "").split(",") if m]
    return Month(max(trained)) if trained else None


def relabel_after_move(
    settings: Settings, engine: Engine, previous: str | None, version: str
) -> tuple[Month, ...]:
    """Relabel with `version` the months `previous` labelled since the drift month.

    Args:
        settings: The settings (registry, model name).
        engine: The survey store.
        previous: The champion before the move (None: nothing to follow).
        version: The champion now.

    Returns:
        The months relabelled (oldest first; empty when none).

    Raises:
        RegistryError: The version cannot be read or loaded. StoreError: the store fails.
    """
    if previous is None or previous == version:
        return ()
    name = settings.model_name
    since = drift_month(dict(get_version(client(settings), name, version).tags))
    months = [s.month for s in list_months(engine) if since is None or s.month >= since]
    todo = tuple(m for m in months if assignments.persona_mix(engine, m, name, previous))
    if not todo:
        return ()
    loaded = load_model_for_serving(settings, f"models:/{name}/{version}")
    for month in todo:
        labeling.label_month(settings, engine, month, loaded=loaded)
    log.info("relabelled %s with %s v%s (was v%s)", ", ".join(todo), name, version, previous)
    return todo
