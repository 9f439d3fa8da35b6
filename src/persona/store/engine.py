"""Engine creation and schema set-up of the survey store."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import SettingsError, StoreError
from persona.settings import Settings, store_url
from persona.store import liveness
from persona.store.schema import SCHEMA_VERSION, metadata, schema_info


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware UTC (what every timestamp column holds)."""
    return dt.datetime.now(dt.UTC)


# Key of the PostgreSQL advisory lock that serialises schema creation (any constant works;
# this one is "persona" in ASCII).
SCHEMA_LOCK_KEY = 0x706572736F6E61


def make_engine(
    url: str,
    connect_timeout_s: int | None = None,
    statement_timeout_s: float | None = None,
    liveness_interval_s: float | None = None,
) -> Engine:
    """Create an engine for a store URL; SQLite files get their folder and foreign keys.

    The settings refuse a SQLite folder that is missing outside `VAR_DIR`
    (`settings.missing_sqlite_folder`), so only the platform's own folders are created here.

    Args:
        url: ``sqlite:///path`` or ``postgresql://...`` (the `DATABASE_URL`; `store_url`
            spells out the psycopg2 driver).
        connect_timeout_s: PostgreSQL only: seconds to open a connection (default
            `PG_CONNECT_TIMEOUT_S`).
        statement_timeout_s: PostgreSQL only: longest statement, 0 = unlimited (default
            `PG_STATEMENT_TIMEOUT_S`).
        liveness_interval_s: PostgreSQL only: probe a silent server after this long
            (`store.liveness`; default `PG_LIVENESS_INTERVAL_S`, 0 = off).

    Returns:
        A SQLAlchemy engine (no connection is opened yet).

    Raises:
        SettingsError: The URL cannot be used (unknown scheme, driver missing, malformed).
    """
    try:
        url = store_url(url)
    except ValueError as exc:
        raise SettingsError(f"DATABASE_URL: {exc}") from None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if connect_timeout_s is None or statement_timeout_s is None or liveness_interval_s is None:
        from persona.settings import get_settings

        cfg = get_settings()
        if connect_timeout_s is None:
            connect_timeout_s = cfg.pg_connect_timeout_s
        if statement_timeout_s is None:
            statement_timeout_s = cfg.pg_statement_timeout_s
        if liveness_interval_s is None:
            liveness_interval_s = cfg.pg_liveness_interval_s
    args = pg_connect_args(connect_timeout_s, statement_timeout_s)
    engine = create_engine(url, pool_pre_ping=True, connect_args=args)
    liveness.install(engine, liveness_interval_s, libpq_connect_timeout(connect_timeout_s))
    return engine


def libpq_connect_timeout(connect_timeout_s: float) -> int:
    """The connect timeout libpq applies: whole seconds, at least 2.

    The liveness probe gets the same budget, so a server is called frozen only after it
    failed to answer for as long as a connection attempt may take.
    """
    return max(2, int(connect_timeout_s))


def pg_connect_args(connect_timeout_s: int, statement_timeout_s: float) -> dict[str, object]:
    """Connection arguments (libpq) bounding every PostgreSQL wait.

    `connect_timeout` bounds opening a connection (a server that accepts TCP but never
    answers included); `statement_timeout` makes the server cancel a statement that runs
    too long; TCP keepalives notice a peer that vanished.

    Args:
        connect_timeout_s: Seconds to connect (libpq takes whole seconds, at least 2).
        statement_timeout_s: Longest statement in seconds; 0 = no limit.

    Returns:
        Keyword arguments for `psycopg2.connect`.
    """
    args: dict[str, object] = {
        "connect_timeout": libpq_connect_timeout(connect_timeout_s),
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if statement_timeout_s > 0:
        args["options"] = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
    return args


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
        with _schema_lock(engine) as conn:
            metadata.create_all(conn)
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


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """One transaction in which no other process sets up the same store.

    PostgreSQL: a transaction-scoped advisory lock (DDL is transactional, so the tables
    appear whole to the next holder). SQLite: an exclusive `flock` on ``<db>.lock`` beside
    the file (in-memory databases need none).
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            yield conn
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with engine.begin() as conn:
            yield conn
        return
    fd = os.open(f"{database}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with engine.begin() as conn:
            yield conn
    finally:
        os.close(fd)  # closing releases the lock


def open_store(url: str, settings: Settings | None = None) -> Engine:
    """Create the engine and make sure the schema exists; the one call callers need.

    Args:
        url: The `DATABASE_URL`.
        settings: Where the PostgreSQL timeouts come from (default: the process settings).

    Returns:
        A ready engine.
    """
    if settings is None:
        engine = make_engine(url)
    else:
        engine = make_engine(
            url,
            settings.pg_connect_timeout_s,
            settings.pg_statement_timeout_s,
            settings.pg_liveness_interval_s,
        )
    init_db(engine)
    return engine
