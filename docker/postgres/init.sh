#!/usr/bin/env bash
# docker-entrypoint-initdb.d hook (runs once, on an empty volume, as the superuser): the
# two databases, one role per service, the survey tables and their grants (init.sql).
# Passwords come from the environment or from files (NAME_FILE, e.g. compose secrets);
# psql reads them with \getenv, so none appears on a command line.
set -euo pipefail
here="${PERSONA_SQL_DIR:-$(dirname "$0")}"
for name in PG_MLFLOW_PASSWORD PG_CYCLE_PASSWORD PG_GOVERNANCE_PASSWORD PG_GRAFANA_PASSWORD; do
  file_var="${name}_FILE"
  if [ -n "${!file_var:-}" ]; then
    export "$name"="$(cat "${!file_var}")"
  fi
  if [ -z "${!name:-}" ]; then
    echo "init.sh: $name (or ${name}_FILE) is empty" >&2
    exit 2
  fi
done
export POSTGRES_SURVEY_DB POSTGRES_MLFLOW_DB
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -f "$here/init.sql"
