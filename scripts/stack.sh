#!/usr/bin/env bash
# `make up | down | status`: the docker-compose stack as local processes (no Docker engine).
#   bash scripts/stack.sh up [service...]      start postgres, gcs, mlflow, api, mage; wait ready
#   bash scripts/stack.sh down [service...]    stop exactly what `up` started
#   bash scripts/stack.sh status [--json]      what runs, on which port, ready or not
#   bash scripts/stack.sh restart <service>    down + up of one service
#   bash scripts/stack.sh env [--json]         settings a `persona` CLI needs to use the stack
# Ports/state are overridable: VAR_DIR, POSTGRES_PORT, GCS_EMULATOR_PORT, MLFLOW_PORT,
# API_PORT, MAGE_PORT, STACK_PG=shared|private. See docs/deployment.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
exec "$REPO/.venv/bin/python" "$REPO/scripts/stack/supervisor.py" "$@"
