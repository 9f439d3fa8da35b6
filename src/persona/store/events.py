"""`model_events`: the audit trail of bootstraps, promotions and rollbacks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import StoreError
from persona.store.engine import utcnow
from persona.store.schema import model_events


def record_event(
    engine: Engine,
    model_name: str,
    event: str,
    from_version: str | None,
    to_version: str,
    reason: str,
    actor: str,
) -> int:
    """Append one event.

    Args:
        engine: The store engine.
        model_name: Registered model name.
        event: ``bootstrap``, ``promote`` or ``rollback``.
        from_version: The champion before (None for the first).
        to_version: The champion after.
        reason: Why (free text).
        actor: Who or what did it (user name, ``auto``...).

    Returns:
        The new event id.
    """
    try:
        with engine.begin() as conn:
            result = conn.execute(
                model_events.insert().values(
                    model_name=model_name,
                    event=event,
                    from_version=from_version,
                    to_version=str(to_version),
                    reason=reason,
                    actor=actor,
                    created_at=utcnow(),
                )
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record the {event} of {model_name} v{to_version}: {exc}") from exc
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def list_events(engine: Engine, model_name: str | None = None) -> list[dict[str, Any]]:
    """Return events oldest first, optionally of one model.

    Args:
        engine: The store engine.
        model_name: Only this registered model (all when None).

    Returns:
        One dict per event with every column.
    """
    query = select(model_events).order_by(model_events.c.event_id)
    if model_name is not None:
        query = query.where(model_events.c.model_name == model_name)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
