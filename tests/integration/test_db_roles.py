"""docker/postgres/init.sh on a fresh PostgreSQL: one role per service, least privilege.

The script runs here exactly as the postgres image runs it (as the superuser, passwords in
the environment), with a role prefix and database names of its own so it never touches
another test's roles. Each role then connects with its password and is tried.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest
from sqlalchemy import text

from persona.store import events
from persona.store.engine import open_store
from tests.conftest import REPO, _admin
from tests.db_schema_sql import schema_sql

pytestmark = pytest.mark.postgres
SERVICES = ("mlflow", "cycle", "governance", "grafana")


@dataclass(frozen=True)
class Cluster:
    prefix: str
    survey_db: str
    mlflow_db: str
    passwords: dict[str, str]

    def role(self, service: str) -> str:
        return f"{self.prefix}{service}"

    def dsn(self, service: str, db: str | None = None) -> str:
        return (
            f"host=127.0.0.1 port=5432 dbname={db or self.survey_db} "
            f"user={self.role(service)} password={self.passwords[service]}"
        )

    def url(self, service: str) -> str:
        password = self.passwords[service]
        return (
            f"postgresql+psycopg2://{self.role(service)}:{password}@127.0.0.1:5432/{self.survey_db}"
        )


def _init(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_SURVEY_DB": cluster.survey_db,
        "POSTGRES_MLFLOW_DB": cluster.mlflow_db,
        "PG_ROLE_PREFIX": cluster.prefix,
        **{f"PG_{s.upper()}_PASSWORD": p for s, p in cluster.passwords.items()},
    }
    return subprocess.run(
        ["bash", str(REPO / "docker/postgres/init.sh")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    tag = uuid.uuid4().hex[:8]
    made = Cluster(
        f"t{tag}_",
        f"t{tag}_survey",
        f"t{tag}_mlflow",
        {s: f"{s}-{uuid.uuid4().hex}" for s in SERVICES},
    )
    try:
        done = _init(made)
        assert done.returncode == 0, done.stderr[-3000:]
        yield made
    finally:
        conn = _admin()
        with conn.cursor() as cur:
            for db in (made.survey_db, made.mlflow_db):
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            for role in (*SERVICES, "owner"):
                cur.execute(f'DROP ROLE IF EXISTS "{made.role(role)}"')
        conn.close()


def _denied(dsn: str, sql: str) -> str:
    """The first line of PostgreSQL's refusal (to connect, or to run `sql`)."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        return str(exc).splitlines()[0]
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
    except psycopg2.Error as exc:
        return str(exc).splitlines()[0]
    finally:
        conn.close()
    raise AssertionError(f"allowed: {sql}")


def _run(dsn: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def test_schema_sql_is_the_store_schema() -> None:
    assert (REPO / "docker/postgres/schema.sql").read_text() == schema_sql(), (
        "regenerate: python -m tests.db_schema_sql > docker/postgres/schema.sql"
    )


def test_one_login_role_per_service_and_none_for_the_api(cluster: Cluster) -> None:
    roles = _run(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        "SELECT rolname, rolcanlogin, rolsuper FROM pg_roles"
        f" WHERE rolname LIKE '{cluster.prefix}%' ORDER BY 1",
    )
    assert roles == sorted(
        [(cluster.role(s), True, False) for s in SERVICES] + [(cluster.role("owner"), False, False)]
    )
    owner = _run(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{cluster.mlflow_db}'",
    )
    assert owner == [(cluster.role("mlflow"),)]  # MLflow owns its database...
    _run(cluster.dsn("mlflow", cluster.mlflow_db), "CREATE TABLE t (x int); DROP TABLE t")
    # ...and cannot even connect to the survey database; no other role reaches MLflow's.
    refused = _denied(cluster.dsn("mlflow"), "SELECT 1")
    assert f'permission denied for database "{cluster.survey_db}"' in refused
    for service in ("cycle", "governance", "grafana"):
        assert "permission denied" in _denied(cluster.dsn(service, cluster.mlflow_db), "SELECT 1")


def test_each_role_does_its_job_and_nothing_more(cluster: Cluster) -> None:
    cycle = open_store(cluster.url("cycle"))  # init_db finds the schema init.sql made
    governance = open_store(cluster.url("governance"))
    try:
        with cycle.begin() as conn:
            conn.execute(text(
                "INSERT INTO survey_responses (respondent_id, survey_month, x1, x2, x3, x4, x5,"
                " x6, x7, x8, x9, x10, batch_id, ingested_at) VALUES ('r1', '2025-01', 0, 0, 0,"
                " 0, 0, 0, 0, 0, 0, 0, 'b1', now())"
            ))  # fmt: skip
        first = events.record_event(
            cycle, events.ModelEvent("m", "bootstrap", None, "1", "t", "cli")
        )
        with events.champion_lock(governance) as conn:  # what sync_champion does
            events.insert_event(conn, events.ModelEvent("m", "promote", "1", "2", "t", "external"))
        assert events.list_events(governance, "m")[0].event_id == first
        with governance.connect() as conn:  # the gates read the survey rows
            assert conn.execute(text("SELECT count(*) FROM survey_responses")).scalar() == 1
    finally:
        cycle.dispose()
        governance.dispose()
    for service in ("cycle", "governance", "grafana"):  # the audit trail is append-only
        assert "permission denied" in _denied(cluster.dsn(service), "DELETE FROM model_events")
        assert "permission denied" in _denied(
            cluster.dsn(service), "UPDATE model_events SET actor = 'x'"
        )
    gov = cluster.dsn("governance")
    assert "permission denied" in _denied(gov, "DELETE FROM survey_responses")
    assert "permission denied" in _denied(gov, "UPDATE persona_assignments SET distance = 0")
    assert "permission denied" in _denied(gov, "SELECT 1 FROM monitoring_runs")
    graf = cluster.dsn("grafana")
    assert _run(graf, "SELECT count(*) FROM model_events") == [(2,)]
    assert _run(graf, "SELECT count(*) FROM monitoring_runs") == [(0,)]
    assert "permission denied" in _denied(graf, "SELECT 1 FROM survey_responses")
    assert "permission denied" in _denied(
        graf, "INSERT INTO model_events (model_name, event, to_version, reason, actor,"
        " created_at) VALUES ('m', 'promote', '9', 'x', 'grafana', now())",
    )  # fmt: skip
    assert "permission denied" in _denied(graf, "CREATE TABLE t (x int)")


def _verifier(role: str) -> str:
    found = _run(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'",
    )
    return str(found[0][0])


def test_init_is_rerunnable_and_rotates_passwords(cluster: Cluster) -> None:
    # The test server trusts local connections, so the password is checked on its verifier.
    before = _verifier(cluster.role("grafana"))
    assert before.startswith("SCRAM-SHA-256$")
    rotated = Cluster(
        cluster.prefix, cluster.survey_db, cluster.mlflow_db,
        {**cluster.passwords, "grafana": f"new-{uuid.uuid4().hex}"},
    )  # fmt: skip
    done = _init(rotated)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _run(rotated.dsn("grafana"), "SELECT count(*) FROM model_events")  # grants kept
    assert _verifier(cluster.role("grafana")) not in ("", before)
    partial = {"cycle": "only-one"}
    missing = _init(Cluster(cluster.prefix, cluster.survey_db, cluster.mlflow_db, partial))
    assert missing.returncode == 2 and "PG_MLFLOW_PASSWORD" in missing.stderr
    assert _verifier(cluster.role("cycle")) != ""  # nothing was changed


def test_without_role_passwords_only_the_databases_are_made() -> None:
    """A compose file older than the roles: the two databases, as before, and no role."""
    tag = uuid.uuid4().hex[:8]
    legacy = Cluster(f"t{tag}_", f"t{tag}_survey", f"t{tag}_mlflow", {})
    try:
        done = _init(legacy)
        assert done.returncode == 0 and "databases only" in done.stderr, done.stderr
        admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        names = f"SELECT datname FROM pg_database WHERE datname LIKE 't{tag}_%' ORDER BY 1"
        assert _run(admin, names) == [(legacy.mlflow_db,), (legacy.survey_db,)]
        roles = f"SELECT rolname FROM pg_roles WHERE rolname LIKE 't{tag}_%'"
        assert _run(admin, roles) == []
    finally:
        conn = _admin()
        with conn.cursor() as cur:
            for db in (legacy.survey_db, legacy.mlflow_db):
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.close()
