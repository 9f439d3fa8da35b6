"""Append Spark labels to `persona_assignments` over JDBC (PostgreSQL), idempotently.

The executors write the labels into a staging table of their own (Spark's JDBC writer, in
`SPARK_JDBC_BATCH_ROWS` batches, with the driver jar `SPARK_JDBC_JAR`: Debian's
``libpostgresql-jdbc-java``). The driver then runs one
``INSERT INTO persona_assignments ... SELECT ... ON CONFLICT DO NOTHING`` and drops the
staging table, in one transaction: a rerun writes nothing twice, and a failed run leaves
neither labels nor the staging table behind. Every label's ``response_id`` must be an
ingested survey response of the label's month (a customer base that is not in the store is
labelled to Parquet only): one anti-join checks them before the insert. ``ON CONFLICT``
names no conflict target, so it holds with the table's key of any schema version.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import Engine, column, exists, func, literal, select, table, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import StoreError
from persona.settings import Settings
from persona.spark.session import SparkJobError
from persona.store.engine import open_store, utcnow
from persona.store.schema import persona_assignments as pa_table
from persona.store.schema import survey_responses

STAGED = ("response_id", "survey_month", "model_name", "model_version", "persona_id",
          "persona_name", "nearest_persona_id", "distance", "margin")  # fmt: skip
log = logging.getLogger(__name__)


def jdbc_target(database_url: str, timeout_s: float) -> tuple[str, dict[str, str]]:
    """The JDBC URL and connection properties of a PostgreSQL `DATABASE_URL` (pure).

    Args:
        database_url: ``postgresql+psycopg2://user:password@host:port/db``.
        timeout_s: Connect/login timeout (`SPARK_JDBC_TIMEOUT_S`).

    Returns:
        ``(jdbc_url, properties)``.

    Raises:
        SparkJobError: The store is not PostgreSQL.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise SparkJobError(
            f"--jdbc writes to PostgreSQL only; DATABASE_URL is {url.get_backend_name()}"
        )
    host, port = url.host or "127.0.0.1", url.port or 5432
    seconds = str(max(1, round(timeout_s)))
    props = {
        "driver": "org.postgresql.Driver",
        "user": url.username or "postgres",
        "connectTimeout": seconds,
        "loginTimeout": seconds,
    }
    if url.password:
        props["password"] = str(url.password)
    return f"jdbc:postgresql://{host}:{port}/{url.database}", props


def write_assignments_jdbc(labels: Any, settings: Settings) -> int:
    """Append labels (with lineage) to `persona_assignments`; existing rows stay.

    Args:
        labels: A labelled DataFrame with lineage (`label.read_labels`).
        settings: `DATABASE_URL`, `SPARK_JDBC_BATCH_ROWS`, `SPARK_JDBC_TIMEOUT_S`.

    Returns:
        Rows newly written.

    Raises:
        SparkJobError: The JDBC driver is missing or the staging write failed.
        StoreError: The final insert failed (e.g. a response id that is not ingested);
            nothing is written then.
    """
    from persona.spark.label import spark_errors

    url, props = jdbc_target(settings.database_url, settings.spark_jdbc_timeout_s)
    if not settings.spark_jdbc_jar.exists():
        raise SparkJobError(
            f"the PostgreSQL JDBC driver is not at {settings.spark_jdbc_jar} (SPARK_JDBC_JAR); "
            "make spark-deps installs Debian's libpostgresql-jdbc-java"
        )
    engine = open_store(settings.database_url)
    staging = f"persona_spark_stage_{uuid.uuid4().hex[:12]}"
    try:
        with spark_errors("the JDBC staging write"):
            labels.select(*STAGED).write.jdbc(
                url,
                staging,
                mode="overwrite",
                properties={**props, "batchsize": str(settings.spark_jdbc_batch_rows)},
            )
        return _merge(engine, staging)
    finally:
        _drop(engine, staging)
        engine.dispose()


def _merge(engine: Engine, staging: str) -> int:
    source = table(staging, *[column(name) for name in STAGED])
    query = select(*[source.c[name] for name in STAGED], literal(utcnow()).label("assigned_at"))
    insert = pg_insert(pa_table).from_select([*STAGED, "assigned_at"], query)
    responses = survey_responses.c
    unknown = select(func.min(source.c.response_id)).where(
        ~exists().where(
            responses.response_id == source.c.response_id,
            responses.survey_month == source.c.survey_month,
        )
    )
    try:
        with engine.begin() as conn:
            missing = conn.execute(unknown).scalar()
            if missing is not None:
                raise StoreError(
                    f"cannot append Spark labels to persona_assignments: response id {missing} "
                    "is not an ingested survey response of its survey_month (every label must "
                    "be one); nothing written"
                )
            result = conn.execute(insert.on_conflict_do_nothing())
            return int(result.rowcount)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot append Spark labels to persona_assignments: {str(exc).splitlines()[0]}"
        ) from None


def _drop(engine: Engine, staging: str) -> None:
    quoted = engine.dialect.identifier_preparer.quote(staging)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {quoted}"))
    except SQLAlchemyError as exc:  # pragma: no cover - the insert's own error matters more
        log.warning("cannot drop the staging table %s: %s", staging, exc)
