-- Run by docker/postgres/init.sh as the superuser (which no service uses). Rerunnable.
-- Names and passwords come from the environment through \getenv (psql 15), never argv:
--   POSTGRES_SURVEY_DB, POSTGRES_MLFLOW_DB       the two databases
--   PG_{MLFLOW,CYCLE,GOVERNANCE,GRAFANA}_PASSWORD  one login role each
--   PG_ROLE_PREFIX                                role names' prefix (default persona_)
-- Roles (docs/security.md):
--   <p>owner       NOLOGIN: owns the survey tables (no service logs in as it)
--   <p>mlflow      owns the MLflow database, nothing in the survey database
--   <p>cycle       the cycle and the CLI: reads and writes the survey tables; appends to
--                  model_events (it promotes, and reconciles at the start of a cycle)
--   <p>governance  the governance receiver: appends to model_events, reads what the gates
--                  need (survey_responses, ingest_batches); writes no survey table
--   <p>grafana     reads what the dashboards show (monitoring_runs, persona_assignments,
--                  model_events), never the raw survey answers
-- The API has no role. model_events is append-only for every role (no UPDATE/DELETE).
-- With no role password at all (legacy = true, a compose file older than the roles) only
-- the two databases are created, as before.
\getenv survey_db POSTGRES_SURVEY_DB
\getenv mlflow_db POSTGRES_MLFLOW_DB
\if :legacy
SELECT format('CREATE DATABASE %I', :'survey_db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'survey_db')\gexec
SELECT format('CREATE DATABASE %I', :'mlflow_db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mlflow_db')\gexec
\quit
\endif
\getenv p PG_ROLE_PREFIX
\if :{?p}
\else
\set p persona_
\endif
\getenv pw_mlflow PG_MLFLOW_PASSWORD
\getenv pw_cycle PG_CYCLE_PASSWORD
\getenv pw_governance PG_GOVERNANCE_PASSWORD
\getenv pw_grafana PG_GRAFANA_PASSWORD
\set owner :p owner
\set mlflow :p mlflow
\set cycle :p cycle
\set governance :p governance
\set grafana :p grafana

-- Roles: created once, passwords set on every run (a rotated secret takes effect).
SELECT format('CREATE ROLE %I NOLOGIN', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner')\gexec
SELECT format('CREATE ROLE %I LOGIN', r)
FROM unnest(ARRAY[:'mlflow', :'cycle', :'governance', :'grafana']) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)\gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', r, pw)
FROM (VALUES (:'mlflow', :'pw_mlflow'), (:'cycle', :'pw_cycle'),
             (:'governance', :'pw_governance'), (:'grafana', :'pw_grafana')) AS v(r, pw)\gexec

-- Databases: MLflow owns its own; nobody but the granted roles connects to the survey one.
SELECT format('CREATE DATABASE %I OWNER %I', :'mlflow_db', :'mlflow')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mlflow_db')\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'mlflow_db', :'mlflow')\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'mlflow_db')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'survey_db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'survey_db')\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'survey_db')\gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I, %I', :'survey_db', :'cycle', :'governance')\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'survey_db', :'grafana')\gexec

\connect :survey_db
-- The tables, owned by the NOLOGIN owner (schema.sql: generated from persona.store.schema).
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT ALL ON SCHEMA public TO :"owner";
SET ROLE :"owner";
\ir schema.sql
RESET ROLE;
GRANT USAGE ON SCHEMA public TO :"cycle", :"governance", :"grafana";
-- Spark's JDBC labeller stages its rows in a table of its own (persona.spark.jdbc).
GRANT CREATE ON SCHEMA public TO :"cycle";

GRANT SELECT, INSERT, UPDATE ON ingest_batches, survey_responses, persona_assignments,
  monitoring_runs TO :"cycle";
-- `persona data ingest --replace` supersedes a month in one transaction (persona.store.survey_replace):
-- its rows, labels, batches and rejects go, the audit row stays (INSERT only).
GRANT DELETE ON ingest_batches, survey_responses, persona_assignments, survey_rejects TO :"cycle";
GRANT SELECT, INSERT ON survey_rejects TO :"cycle";
GRANT SELECT, INSERT ON survey_replacements TO :"cycle";
GRANT SELECT, INSERT ON model_events TO :"cycle", :"governance";
-- The champion lock is a no-op UPDATE of the one schema_info row (persona.store.events).
GRANT SELECT, UPDATE ON schema_info TO :"cycle", :"governance";
GRANT SELECT ON survey_responses, ingest_batches TO :"governance";
-- Labels follow the champion: a move recorded by governance relabels the months since the
-- drift month with the new champion (persona.registry.relabel; append-only, so INSERT).
GRANT SELECT, INSERT ON persona_assignments TO :"governance";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"cycle";
GRANT USAGE ON SEQUENCE model_events_event_id_seq TO :"governance";
-- ingest_batches and survey_rejects: counts per month for the "Rejected rows" panel (no answers).
GRANT SELECT ON monitoring_runs, persona_assignments, model_events, ingest_batches, survey_rejects
  TO :"grafana";
