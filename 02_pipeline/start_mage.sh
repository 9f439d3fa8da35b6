#!/usr/bin/env bash
# `make mage`: start the Mage UI + scheduler for the PersonaOps project on MAGE_PORT,
# against the same settings as the `persona` CLI (the environment; make adds `.env`).
# Mage state goes to MAGE_DATA_DIR (default <repo>/var/mage_data), never ~/.mage_data.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export MAGE_DATA_DIR="${MAGE_DATA_DIR:-$REPO/var/mage_data}"
export PERSONA_BIN="${PERSONA_BIN:-$REPO/.venv/bin/persona}"
export MAGE_PORT="${MAGE_PORT:-6789}"
# Bind the loopback interface only unless MAGE_HOST says otherwise (the container sets
# 0.0.0.0; compose publishes the port on 127.0.0.1). Mage's own default binds everything.
export MAGE_HOST="${MAGE_HOST:-127.0.0.1}"
# Authentication on, owner account from the settings (MAGE_ADMIN_*), for `make mage` as for
# the stack; prepare_mage.py applies them to an existing owner too. A local trial (Mage bound
# to the loopback interface, no MAGE_ADMIN_PASSWORD) gets the documented trial login
# admin@admin.com / change-me; anywhere else an empty password is refused.
TRIAL_EMAIL=admin@admin.com
TRIAL_PASSWORD=change-me
trial=0
case "$MAGE_HOST" in 127.0.0.1 | localhost | ::1) trial=1 ;; esac
if ((trial)) && [[ -z "${DEFAULT_OWNER_PASSWORD:-${MAGE_ADMIN_PASSWORD:-}}" ]]; then
  export MAGE_ADMIN_EMAIL="${MAGE_ADMIN_EMAIL:-$TRIAL_EMAIL}" MAGE_ADMIN_PASSWORD="$TRIAL_PASSWORD"
  echo "Mage local trial on $MAGE_HOST: log in as $MAGE_ADMIN_EMAIL / $TRIAL_PASSWORD (the documented"
  echo "  trial defaults; set MAGE_ADMIN_EMAIL / MAGE_ADMIN_PASSWORD in .env for anything else)"
fi
export REQUIRE_USER_AUTHENTICATION="${REQUIRE_USER_AUTHENTICATION:-1}"
export DEFAULT_OWNER_EMAIL="${DEFAULT_OWNER_EMAIL:-${MAGE_ADMIN_EMAIL:-$TRIAL_EMAIL}}"
export DEFAULT_OWNER_PASSWORD="${DEFAULT_OWNER_PASSWORD:-${MAGE_ADMIN_PASSWORD:-}}"
export DEFAULT_OWNER_USERNAME="${DEFAULT_OWNER_USERNAME:-admin}"
if [[ -z "$DEFAULT_OWNER_PASSWORD" ]]; then
  echo "MAGE_ADMIN_PASSWORD is empty and Mage binds $MAGE_HOST (not a local trial): set it in .env" >&2
  exit 2
fi
PROJECT="$REPO/02_pipeline/persona_pipeline"
MAGE_PY="${MAGE_VENV:-$REPO/.venv-mage}/bin"

mkdir -p "$MAGE_DATA_DIR"
# Mage reads triggers.yaml literally: put MAGE_API_TOKEN on the API triggers first, and
# the configured owner password on an existing owner.
if ! out="$("$MAGE_PY/python" "$REPO/02_pipeline/prepare_mage.py" "$PROJECT" 2>&1)"; then
  echo "$out" >&2
  exit 2
fi
grep -v -e alembic -e traitlets -e DBT <<<"$out" || true
echo "Mage UI: http://$MAGE_HOST:$MAGE_PORT (log in as $DEFAULT_OWNER_EMAIL with MAGE_ADMIN_PASSWORD;"
echo "  project $PROJECT, state $MAGE_DATA_DIR)"
exec "$MAGE_PY/python" "$REPO/02_pipeline/mage_server.py" start "$PROJECT" \
  --host "$MAGE_HOST" --port "$MAGE_PORT"
