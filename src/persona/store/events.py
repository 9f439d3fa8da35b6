"""`model_events`: the audit trail of bootstraps, promotions and rollbacks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import StoreError
from persona.store.engine import utcnow
from persona.store.schema import model_events, schema_info


@dataclass(frozen=True)
class ModelEvent:
    """One move of the champion, as the audit trail records it.

    Attributes:
        model_name: Registered model name.
        event: ``bootstrap``, ``promote`` or ``rollback``.
        from_version: The champion before (None for the first).
        to_version: The champion after.
        reason: Why (free text).
        actor: Who or what did it (user name, ``auto``...).
    """

    model_name: str
    event: str
    from_version: str | None
    to_version: str
    reason: str
    actor: str


@dataclass(frozen=True)
class RecordedEvent(ModelEvent):
    """An event as stored: the `ModelEvent` plus its id and time.

    Attributes:
        event_id: The row id (events replay in this order).
        created_at: When it was recorded.
    """

    event_id: int
    created_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """Every column, JSON-ready (the time as ISO text)."""
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def record_event(engine: Engine, event: ModelEvent) -> int:
    """Append one event in its own transaction.

    Args:
        engine: The store engine.
        event: The event.

    Returns:
        The new event id.

    Raises:
        StoreError: The event cannot be written.
    """
    try:
        with engine.begin() as conn:
            return insert_event(conn, event)
    except SQLAlchemyError as exc:
        what = f"the {event.event} of {event.model_name} v{event.to_version}"
        raise StoreError(f"cannot record {what}: {exc}") from exc


def list_events(engine: Engine, model_name: str | None = None) -> list[RecordedEvent]:
    """Return events oldest first, optionally of one model.

    Args:
        engine: The store engine.
        model_name: Only this registered model (all when None).

    Returns:
        One `RecordedEvent` per row.
    """
    query = select(model_events).order_by(model_events.c.event_id)
    if model_name is not None:
        query = query.where(model_events.c.model_name == model_name)
    with engine.connect() as conn:
        return [RecordedEvent(**row._mapping) for row in conn.execute(query)]


@contextmanager
def champion_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the store's champion lock until it ends.

    Every move of the ``champion`` alias made by the platform, and every check for a move
    made outside it (`registry.governance.sync_champion`), runs inside this lock, so a
    check never sees an alias the platform has moved but not yet recorded. The lock is a
    no-op write on the one `schema_info` row: a row lock on PostgreSQL, the write lock on
    SQLite (waits are bounded by the connection's busy timeout).

    Yields:
        The connection of the locked transaction (commit on success, rollback on error).
    """
    with engine.begin() as conn:
        conn.execute(update(schema_info).where(schema_info.c.id == 1).values(id=1))
        yield conn


def last_champion(conn: Connection, model_name: str) -> str | None:
    """The champion the audit trail ends with (`to_version` of the last event), if any."""
    query = (
        select(model_events.c.to_version)
        .where(model_events.c.model_name == model_name)
        .order_by(model_events.c.event_id.desc())
        .limit(1)
    )
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def insert_event(conn: Connection, event: ModelEvent) -> int:
    """Append one event inside an open transaction.

    Args:
        conn: A connection inside the caller's transaction (e.g. `champion_lock`).
        event: The event.

    Returns:
        The new event id.
    """
    result = conn.execute(
        model_events.insert().values(
            model_name=event.model_name,
            event=event.event,
            from_version=event.from_version,
            to_version=str(event.to_version),
            reason=event.reason,
            actor=event.actor,
            created_at=utcnow(),
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0
