"""Engine creation and schema set-up of the survey store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import StoreError
from persona.store.schema import SCHEMA_VERSION, metadata, schema_info


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware UTC (what every timestamp column holds)."""
    return dt.datetime.now(dt.UTC)


def make_engine(url: str) -> Engine:
    """Create an engine for a store URL; SQLite files get their folder and foreign keys.

    Args:
        url: ``sqlite:///path`` or ``postgresql+psycopg2://...`` (the `DATABASE_URL`).

    Returns:
        A SQLAlchemy engine (no connection is opened yet).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def init_db(engine: Engine) -> int:
    """Create missing tables and record the schema version (idempotent).

    Args:
        engine: The store engine.

    Returns:
        The schema version of the database.

    Raises:
        StoreError: The database cannot be reached or was written by a newer schema.
    """
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            version = conn.execute(select(schema_info.c.version)).scalar()
            if version is None:
                conn.execute(
                    schema_info.insert().values(id=1, version=SCHEMA_VERSION, applied_at=utcnow())
                )
                return SCHEMA_VERSION
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot set up the survey store at {engine.url!r}: {exc}") from exc
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this code ({SCHEMA_VERSION})"
        )
    return int(version)


def open_store(url: str) -> Engine:
    """Create the engine and make sure the schema exists; the one call callers need.

    Args:
        url: The `DATABASE_URL`.

    Returns:
        A ready engine.
    """
    engine = make_engine(url)
    init_db(engine)
    return engine
