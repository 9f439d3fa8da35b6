#!/usr/bin/env bash
# `make mage`: start the Mage UI + scheduler for the PersonaOps project on MAGE_PORT,
# against the same settings as the `persona` CLI (.env and the environment).
# Mage state goes to MAGE_DATA_DIR (default <repo>/var/mage_data), never ~/.mage_data.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# .env fills in only what the environment does not already set (as pydantic-settings does),
# so `make up` and tests can point Mage at their own stack.
if [[ -f .env ]]; then
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    name="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
    if [[ -z "${!name+x}" ]]; then export "$name=$value"; fi
  done < .env
fi
export MAGE_DATA_DIR="${MAGE_DATA_DIR:-$REPO/var/mage_data}"
export PERSONA_BIN="${PERSONA_BIN:-$REPO/.venv/bin/persona}"
export MAGE_PORT="${MAGE_PORT:-6789}"
PROJECT="$REPO/02_pipeline/persona_pipeline"
MAGE_PY="${MAGE_VENV:-$REPO/.venv-mage}/bin"

mkdir -p "$MAGE_DATA_DIR"
# Mage reads triggers.yaml literally: put MAGE_API_TOKEN on the API triggers first.
if ! out="$("$MAGE_PY/python" "$REPO/02_pipeline/set_api_token.py" "$PROJECT" 2>&1)"; then
  echo "$out" >&2
  exit 2
fi
grep -v -e alembic -e traitlets -e DBT <<<"$out" || true
echo "Mage UI: http://127.0.0.1:$MAGE_PORT (project $PROJECT, state $MAGE_DATA_DIR)"
exec "$MAGE_PY/mage" start "$PROJECT" --port "$MAGE_PORT"
