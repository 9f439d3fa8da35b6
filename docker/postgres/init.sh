#!/usr/bin/env bash
# docker-entrypoint-initdb.d hook (runs once, on an empty volume, as the superuser): the
# two databases, one role per service, the survey tables and their grants (init.sql).
# Passwords come from the environment or from files (NAME_FILE, e.g. compose secrets);
# psql reads them with \getenv, so none appears on a command line.
set -euo pipefail
here="${PERSONA_SQL_DIR:-$(dirname "$0")}"
names="PG_MLFLOW_PASSWORD PG_CYCLE_PASSWORD PG_GOVERNANCE_PASSWORD PG_GRAFANA_PASSWORD"
given=0
for name in $names; do
  file_var="${name}_FILE"
  if [ -n "${!file_var:-}" ]; then
    export "$name"="$(cat "${!file_var}")"
  fi
  if [ -n "${!name:-}" ]; then given=$((given + 1)); fi
done
legacy=false
if [ "$given" -eq 0 ]; then
  # A stack whose compose file predates the roles: the two databases only, as before.
  echo "init.sh: no PG_*_PASSWORD set: databases only, no service roles (docs/security.md)" >&2
  legacy=true
elif [ "$given" -lt 4 ]; then
  echo "init.sh: set all of $names (or their _FILE); nothing was created" >&2
  exit 2
fi
sql="$here/init.sql"
[ -f "$sql" ] || sql="$here/init.sql.in"  # the name an older compose file mounts it under
export POSTGRES_SURVEY_DB POSTGRES_MLFLOW_DB
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v legacy="$legacy" -f "$sql"
