"""docker/postgres/schema.sql is `persona.store.schema` as PostgreSQL DDL (kept in sync).

Regenerate after a schema change: ``python -m tests.db_schema_sql > docker/postgres/schema.sql``.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from persona.store.schema import SCHEMA_VERSION, metadata

HEADER = """-- Generated from persona.store.schema (SCHEMA_VERSION {version}); do not edit by hand:
--   python -m tests.db_schema_sql > docker/postgres/schema.sql
-- Included by init.sql as the tables' owner role.
"""


def schema_sql() -> str:
    """The DDL of every table and index, and the schema_info row, as init.sql runs it."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    parts = [HEADER.format(version=SCHEMA_VERSION)]
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))
        parts.append("\n".join(line.rstrip() for line in ddl.strip().splitlines()) + ";")
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            parts.append(f"{CreateIndex(index, if_not_exists=True).compile(dialect=dialect)};")
    parts.append(
        "INSERT INTO schema_info (id, version, applied_at) "
        f"VALUES (1, {SCHEMA_VERSION}, now()) ON CONFLICT (id) DO NOTHING;"
    )
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(schema_sql(), end="")
