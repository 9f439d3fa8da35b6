#!/usr/bin/env bash
# docker-entrypoint-initdb.d hook: create the survey and mlflow databases (names from .env).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v survey_db="$POSTGRES_SURVEY_DB" -v mlflow_db="$POSTGRES_MLFLOW_DB" \
  -f /docker-entrypoint-initdb.d/init.sql.in
