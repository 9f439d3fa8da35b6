"""A scratch PostgreSQL database for one benchmark run (created, then dropped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

ADMIN_DSN = os.environ.get(
    "BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
URL = os.environ.get("BENCH_PG_URL_TEMPLATE", "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}")


def _admin(sql: str) -> None:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


@contextmanager
def scratch_database(prefix: str) -> Iterator[tuple[str, str]]:
    """Yield ``(name, sqlalchemy_url)`` of a fresh database, dropped on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name, URL.format(db=name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
